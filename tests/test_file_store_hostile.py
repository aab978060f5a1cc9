"""FileTokenStore on a hostile or odd file system: planted lock files and links, files of
other users, symbolic links to the token file, FIFOs, devices, huge and absurd content.

Every case ends in a TokenStoreError that names the file and says why (never the file's
content), within a bounded time, and damages nothing. The cases with another user run as
root (as CI does) and switch a forked child to ``nobody``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock
import pytest

from requests_refresh import FileTokenStore, Token, TokenStoreError
from requests_refresh.cli import main
from requests_refresh.stores.file_store import MAX_FILE_SIZE

from .store_contract import make_token
from .workers.process import Worker

POSIX = os.name == "posix"
posix_only = pytest.mark.skipif(not POSIX, reason="POSIX file types, owners and links")
root_only = pytest.mark.skipif(
    not POSIX or os.geteuid() != 0,
    reason="switching a child process to another user needs root (CI runs the tests as root)",
)
NOBODY = 65534  # the uid and gid of `nobody`


# -- helpers --------------------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may write to, sticky like /tmp."""
    directory = Path(tempfile.mkdtemp(prefix="requests-refresh-shared-", dir="/tmp"))
    directory.chmod(0o1777)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def as_nobody(action: Callable[[], str], timeout: float = 10.0) -> str:
    """Run ``action`` in a forked child switched to ``nobody``: what it returned, prefixed
    ``ok:``, or the exception it raised as ``Name: message``."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork in a process with threads; the child only runs
        # `action` and leaves with os._exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a mode warning is not the point here
                reply, code = "ok: " + action(), 0
        except BaseException as exc:  # reported to the parent, whatever it is
            reply = f"{type(exc).__name__}: {exc}"
        try:
            os.write(write_end, reply.encode()[:60_000])
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    finished = False
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"the child running as nobody took over {timeout:g} s")
            chunk = os.read(read_end, 65536)
            if not chunk:
                finished = True
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        if not finished:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def plant_file(path: Path, content: bytes) -> Callable[[], str]:
    """An action that creates ``path`` (mode 0644) holding ``content``."""

    def action() -> str:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as file:
            file.write(content)
        return "planted"

    return action


def plant_link(path: Path, target: Path) -> Callable[[], str]:
    """An action that creates a symbolic link ``path`` -> ``target``."""

    def action() -> str:
        os.symlink(target, path)
        return "planted"

    return action


def token_file_bytes(token: Token) -> bytes:
    return json.dumps({"version": 1, "tokens": {"default": token.to_dict()}}).encode()


def every_operation(store: FileTokenStore) -> dict[str, Callable[[], object]]:
    def hold_lock() -> None:
        with store.lock():
            pass

    return {
        "load": store.load,
        "save": lambda: store.save(make_token(9)),
        "clear": store.clear,
        "lock": hold_lock,
    }


def within(seconds: float, function: Callable[[], object]) -> BaseException | None:
    """Run ``function`` in a thread; what it raised (None if nothing). Fails the test if
    it has not returned within ``seconds``, instead of hanging."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            function()
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=seconds)
    assert not thread.is_alive(), f"still running after {seconds:g} s: it would hang"
    return outcome[0]


# -- 9a: a planted lock file ----------------------------------------------------------------


@posix_only
def test_filelock_refuses_to_open_a_symlinked_lock_file(tmp_path: Path) -> None:
    """The filelock we require opens the lock file with O_NOFOLLOW: no truncation through a
    link planted between our check and its open (filelock < 3.20.1 truncated the target)."""
    victim = tmp_path / "victim.json"
    victim.write_bytes(token_file_bytes(make_token(1)))
    link = tmp_path / "tokens.json.lock"
    link.symlink_to(victim)
    lock = filelock.FileLock(str(link), timeout=1)
    with pytest.raises(OSError):  # noqa: PT011 - ELOOP; any refusal will do
        lock.acquire()
    assert victim.read_bytes() == token_file_bytes(make_token(1))


@posix_only
def test_lock_file_symlinked_to_a_token_file_is_refused_and_truncates_nothing(
    tmp_path: Path,
) -> None:
    """A `tokens.json.lock` link to the victim's token file: every operation refuses it,
    saying why, and the victim's file keeps its token."""
    victim = tmp_path / "victim" / "tokens.json"
    FileTokenStore(victim).save(make_token(1))
    content = victim.read_bytes()
    shared = tmp_path / "shared"
    shared.mkdir()
    FileTokenStore(shared / "tokens.json").save(make_token(2))
    (shared / "tokens.json.lock").unlink()
    (shared / "tokens.json.lock").symlink_to(victim)
    store = FileTokenStore(shared / "tokens.json")
    for name, operation in every_operation(store).items():
        if name == "load":
            continue  # a load takes no lock
        with pytest.raises(TokenStoreError, match="is a symbolic link") as caught:
            operation()
        assert str(shared / "tokens.json.lock") in str(caught.value), name
        assert caught.value.path == str(shared / "tokens.json.lock")
    assert victim.read_bytes() == content
    assert FileTokenStore(victim).load() == make_token(1)


@posix_only
def test_lock_file_hard_linked_to_a_token_file_is_refused(tmp_path: Path) -> None:
    """A lock file that is another name for a token file is refused: taking the lock would
    truncate it."""
    victim = tmp_path / "victim.json"
    FileTokenStore(victim).save(make_token(1))
    content = victim.read_bytes()
    os.link(victim, tmp_path / "tokens.json.lock")
    with pytest.raises(TokenStoreError, match="has 2 names"):
        FileTokenStore(tmp_path / "tokens.json").save(make_token(2))
    assert victim.read_bytes() == content


@posix_only
def test_lock_path_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    """Something other than a file at `<path>.lock` is refused, saying what it is."""
    os.mkfifo(tmp_path / "tokens.json.lock")
    error = within(10, lambda: FileTokenStore(tmp_path / "tokens.json").save(make_token(1)))
    assert isinstance(error, TokenStoreError)
    assert "named pipe" in str(error)
    assert not (tmp_path / "tokens.json").exists()


# -- 9b: files of another user --------------------------------------------------------------


@root_only
def test_token_file_planted_by_another_user_is_refused(shared_dir: Path) -> None:
    """A token file another user created in a shared directory is neither used nor
    replaced: TokenStoreError naming the file and its owner."""
    path = shared_dir / "tokens.json"
    planted = token_file_bytes(make_token(666))
    assert as_nobody(plant_file(path, planted)) == "ok: planted"
    store = FileTokenStore(path)
    for name, operation in every_operation(store).items():
        if name == "lock":
            continue  # the lock file is ours: locking alone is fine
        with pytest.raises(TokenStoreError, match="belongs to another user") as caught:
            operation()
        assert "nobody" in str(caught.value), name
        assert caught.value.path == str(path)
        assert "666" not in str(caught.value)
    assert path.read_bytes() == planted
    assert path.stat().st_uid == NOBODY


@root_only
def test_lock_file_planted_by_another_user_is_refused(shared_dir: Path) -> None:
    """A lock file another user created (so could hold for ever, or swap) is refused."""
    path = shared_dir / "tokens.json"
    assert as_nobody(plant_file(shared_dir / "tokens.json.lock", b"")) == "ok: planted"
    with pytest.raises(TokenStoreError, match="belongs to another user") as caught:
        FileTokenStore(path).save(make_token(1))
    assert "nobody" in str(caught.value)
    assert caught.value.path == str(shared_dir / "tokens.json.lock")
    assert not path.exists()


@root_only
def test_symlink_planted_by_another_user_is_not_followed(shared_dir: Path, tmp_path: Path) -> None:
    """Another user's link at the token path (say to a file root would then create) is
    refused: nothing is read or created through it."""
    path = shared_dir / "tokens.json"
    target = tmp_path / "created-by-root.json"
    assert as_nobody(plant_link(path, target)) == "ok: planted"
    store = FileTokenStore(path)
    for name in ("load", "save", "clear"):
        with pytest.raises(TokenStoreError, match="belongs to another user") as caught:
            every_operation(store)[name]()
        assert caught.value.path == str(path)
    assert not target.exists()
    assert not (tmp_path / "created-by-root.json.lock").exists()


@root_only
def test_another_user_gets_a_clean_error_from_roots_private_file(shared_dir: Path) -> None:
    """The reverse: root's 0600 token and lock files in a shared directory are a clean
    TokenStoreError for another user, and stay as they were."""
    path = shared_dir / "tokens.json"
    FileTokenStore(path).save(make_token(1))
    content = path.read_bytes()
    store = FileTokenStore(path, lock_timeout=1)
    assert as_nobody(lambda: repr(store.load())).startswith(
        f"TokenStoreError: cannot read the token file {path}"
    )

    def save() -> str:
        store.save(make_token(2))
        return "saved"

    assert as_nobody(save).startswith(
        f"TokenStoreError: could not create the lock file {path}.lock"
    )
    assert path.read_bytes() == content


@root_only
def test_a_file_root_owns_is_trusted_by_another_user(shared_dir: Path) -> None:
    """Root can write any file anyway, so a token file root provisioned (and made readable)
    is used by another user, as ssh accepts root-owned configuration."""
    path = shared_dir / "tokens.json"
    FileTokenStore(path).save(make_token(1))
    path.chmod(0o644)
    assert as_nobody(lambda: repr(FileTokenStore(path).load() == make_token(1))) == "ok: True"


# -- 9c: the token path is a symbolic link --------------------------------------------------


@posix_only
def test_save_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    """Dotfile style, `~/tokens.json -> dotfiles/tokens.json`: a save keeps the link, puts the
    new token in the target atomically (a new file renamed into the target's directory),
    and locks next to the target."""
    dotfiles, home = tmp_path / "dotfiles", tmp_path / "home"
    dotfiles.mkdir()
    home.mkdir()
    target, link = dotfiles / "tokens.json", home / "tokens.json"
    FileTokenStore(target).save(make_token(1))
    link.symlink_to(Path("..") / "dotfiles" / "tokens.json")
    replaced = target.stat().st_ino
    store = FileTokenStore(link)
    assert store.load() == make_token(1)
    store.save(make_token(2))
    assert link.is_symlink()
    assert os.readlink(link) == str(Path("..") / "dotfiles" / "tokens.json")
    assert FileTokenStore(target).load() == make_token(2)
    assert target.stat().st_ino != replaced  # renamed over, not rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in dotfiles.iterdir()) == ["tokens.json", "tokens.json.lock"]
    assert sorted(p.name for p in home.iterdir()) == ["tokens.json"]
    assert store.lock_path == target.with_name("tokens.json.lock")
    store.clear()
    assert link.is_symlink()
    assert FileTokenStore(target).load() is None


@posix_only
def test_the_link_and_its_target_share_one_lock(tmp_path: Path) -> None:
    """A process using the target's path holds the lock: a store opened through the link
    waits for that same lock (and times out naming it)."""
    target, link = tmp_path / "real" / "tokens.json", tmp_path / "tokens.json"
    FileTokenStore(target).save(make_token(1))
    link.symlink_to(target)
    other = Worker("foreign-lock", str(target) + ".lock")
    try:
        other.expect("locked")
        with pytest.raises(TokenStoreError, match=r"within 0\.3 s") as caught:
            FileTokenStore(link, lock_timeout=0.3).save(make_token(2))
        assert caught.value.path == str(target) + ".lock"
    finally:
        other.close()
    assert FileTokenStore(target).load() == make_token(1)


@posix_only
def test_save_through_a_dangling_symlink_creates_the_target(tmp_path: Path) -> None:
    """A link made before its target exists (dotfile managers do that): save creates the
    target, 0600, in a missing directory made 0700."""
    target, link = tmp_path / "dotfiles" / "app" / "tokens.json", tmp_path / "tokens.json"
    link.symlink_to(target)
    assert FileTokenStore(link).load() is None
    FileTokenStore(link).save(make_token(1))
    assert link.is_symlink()
    assert FileTokenStore(target).load() == make_token(1)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700


# -- 9d: only regular files of bounded size, every bad content a TokenStoreError ------------


@posix_only
def test_fifo_at_the_path_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe at the token path: load, save and clear refuse it at once."""
    path = tmp_path / "tokens.json"
    os.mkfifo(path)
    store = FileTokenStore(path)
    for name in ("load", "save", "clear"):
        error = within(10, every_operation(store)[name])
        assert isinstance(error, TokenStoreError), name
        assert "a named pipe (FIFO), not a regular file" in str(error)
        assert error.path == str(path)
    assert stat.S_ISFIFO(path.lstat().st_mode)


@posix_only
def test_symlink_to_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A link to /dev/zero is refused as a device, not read until memory runs out."""
    path = tmp_path / "tokens.json"
    path.symlink_to("/dev/zero")
    store = FileTokenStore(path)
    for name in ("load", "save"):
        error = within(10, every_operation(store)[name])
        assert isinstance(error, TokenStoreError), name
        assert "a character device, not a regular file" in str(error)


def test_file_over_the_size_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A token file larger than MAX_FILE_SIZE (a sparse 1 GiB one too) is refused."""
    path = tmp_path / "tokens.json"
    with open(path, "wb") as file:
        file.truncate(1 << 30)
    if POSIX:
        path.chmod(0o600)
    store = FileTokenStore(path)
    for name in ("load", "save", "clear"):
        error = within(10, every_operation(store)[name])
        assert isinstance(error, TokenStoreError), name
        assert f"larger than the {MAX_FILE_SIZE:,} bytes" in str(error)
    assert path.stat().st_size == 1 << 30


def test_save_refuses_a_token_that_would_make_the_file_too_large(tmp_path: Path) -> None:
    """What a load would refuse is never written: the file keeps the token it had."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(make_token(1))
    with pytest.raises(TokenStoreError, match="over the 1,048,576 bytes a load accepts"):
        store.save(Token("a" * MAX_FILE_SIZE))
    assert store.load() == make_token(1)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "it is nested too deeply"),
        (
            b'{"version": 1, "tokens": {"default": {"access_token": "secret",'
            b' "expires_at": ' + b"9" * 5000 + b"}}}",
            "it holds a number too long to read",
        ),
    ],
    ids=["200000-deep", "5000-digits"],
)
def test_absurd_json_is_a_store_error_naming_the_file(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    """Deep nesting and huge integers are TokenStoreErrors, not RecursionError/ValueError,
    from load, save and clear; the file is left as it was."""
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    if POSIX:
        path.chmod(0o600)
    store = FileTokenStore(path)
    for name in ("load", "save", "clear"):
        with pytest.raises(TokenStoreError, match=problem) as caught:
            every_operation(store)[name]()
        assert caught.value.path == str(path)
        assert "secret" not in str(caught.value)
        assert "999" not in str(caught.value)
    assert path.read_bytes() == content


def test_save_refuses_a_token_too_deep_to_write(tmp_path: Path) -> None:
    """A token whose extra fields cannot be written as JSON is a TokenStoreError; the file
    keeps what it had."""
    deep: dict[str, object] = {}
    for _ in range(100_000):
        deep = {"k": deep}
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(make_token(1))
    with pytest.raises(TokenStoreError, match="cannot be written as JSON"):
        store.save(Token("access", extra={"deep": deep}))
    assert store.load() == make_token(1)


def run_command(*args: str) -> int:
    """`requests-refresh ARGS...` in this process; its exit status, within 10 s."""
    codes: list[int] = []
    assert within(10, lambda: codes.append(main(list(args)))) is None
    return codes[0]


def bad_paths(tmp_path: Path) -> dict[str, Path]:
    """Token paths with bad content of every kind, for the command line."""
    paths: dict[str, Path] = {}
    for name, content in (
        ("deep", b"[" * 200_000 + b"]" * 200_000),
        ("digits", b'{"version": 1, "tokens": {"default": {"expires_at": 1' + b"0" * 5000),
    ):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_bytes(content)
    if POSIX:
        for path in paths.values():
            path.chmod(0o600)
        paths["fifo"] = tmp_path / "fifo.json"
        os.mkfifo(paths["fifo"])
        paths["zero"] = tmp_path / "zero.json"
        paths["zero"].symlink_to("/dev/zero")
    return paths


@pytest.mark.parametrize("action", ["show", "clear"])
def test_token_show_and_clear_report_bad_content_as_one_clean_line(
    tmp_path: Path, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`requests-refresh token show/clear` on any bad content exits 1 with one message
    naming the file: no traceback, no hang, no content."""
    for name, path in bad_paths(tmp_path).items():
        assert run_command("token", action, "--file", str(path)) == 1, name
        out, err = capsys.readouterr()
        assert err.startswith(f"requests-refresh: the token file {path} is corrupt") or (
            err.startswith(f"requests-refresh: cannot read the token file {path}: it is a")
        ), name
        assert err.count("\n") == 1, name
        assert "00000" not in err, name
        assert out == "", name


def test_token_show_reports_an_absurd_expiry_without_crashing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stored expiry far beyond any calendar is one clean error line, not an OverflowError."""
    path = tmp_path / "tokens.json"
    entry = {"access_token": "access", "expires_at": 1e300, "issued_at": -1e300}
    path.write_text(json.dumps({"version": 1, "tokens": {"default": entry}}))
    path.chmod(0o600)
    assert main(["token", "show", "--file", str(path)]) == 1
    err = capsys.readouterr().err
    assert "expires_at" in err
    assert "access" not in err.replace("access_token", "")
    assert len(err.strip().splitlines()) == 1

"""What a store may trust in the files it opens: their type and their owner."""

from __future__ import annotations

import os
import stat
from pathlib import Path

_POSIX = os.name == "posix"

if _POSIX:
    import pwd

#: Advice for a file another user could have planted.
SHARED_DIRECTORY_HINT = (
    "check why it is there and remove it, and keep token files in a directory"
    " that other users cannot write to"
)


def kind(mode: int) -> str:
    """What a file of ``mode`` is, in words: ``"a named pipe (FIFO)"``, ..."""
    for test, name in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def foreign_owner(info: os.stat_result) -> str | None:
    """Who owns the file, when it is another user than this process's; else None.

    Root is trusted like the user itself, as ssh trusts its configuration files: root can
    write any file anyway, so a file root provisioned adds no risk. Always None where
    files have no POSIX owner.
    """
    if not _POSIX or info.st_uid in (os.geteuid(), 0):
        return None
    try:
        return f"{pwd.getpwuid(info.st_uid).pw_name} (uid {info.st_uid})"
    except KeyError:
        return f"uid {info.st_uid}"


def make_private_directory(directory: Path) -> None:
    """Create ``directory`` and each missing parent, outermost first, each 0700.

    Directories that exist already are left as they are. The mode is set again after
    ``mkdir``, whose mode the umask cuts.

    Raises:
        OSError: a directory could not be created.
    """
    if directory.is_dir():
        return
    missing = [directory, *(p for p in directory.parents if not p.is_dir())]
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)
        os.chmod(each, 0o700)

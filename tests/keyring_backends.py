"""Real keyring backends for the tests: a JSON file that several processes can share,
and a variant that refuses secrets over Windows Credential Manager's 2,560 bytes.

Child processes select them with ``PYTHON_KEYRING_BACKEND=tests.keyring_backends.JsonFileKeyring``
(the checkout's root on ``PYTHONPATH``) and name the file in ``REQUESTS_REFRESH_TEST_KEYRING``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import filelock
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError, PasswordSetError

#: The environment variable naming the file, for backends that keyring builds itself.
PATH_VARIABLE = "REQUESTS_REFRESH_TEST_KEYRING"

#: Windows Credential Manager's CRED_MAX_CREDENTIAL_BLOB_SIZE, in bytes of UTF-16.
WINDOWS_BLOB_LIMIT = 2560


class JsonFileKeyring(KeyringBackend):
    """Keeps passwords in a JSON file; each operation is atomic across processes."""

    priority = 0.01

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        # keyring builds every registered backend while detecting one: no failing here.
        super().__init__()  # type: ignore[no-untyped-call]  # keyring leaves it unannotated
        self._path = None if path is None else Path(path)

    @property
    def path(self) -> Path:
        """The file: as given, else named by ``REQUESTS_REFRESH_TEST_KEYRING``."""
        if self._path is None:
            self._path = Path(os.environ[PATH_VARIABLE])
        return self._path

    @property
    def _lock(self) -> filelock.FileLock:
        return filelock.FileLock(str(self.path) + ".lock", timeout=30)

    def _read(self) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data

    def _write(self, data: dict[str, str]) -> None:
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".keyring-")
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temp, self.path)

    @staticmethod
    def _key(service: str, username: str) -> str:
        return json.dumps([service, username])

    def entries(self) -> dict[tuple[str, str], str]:
        """Everything stored, for tests to inspect."""
        with self._lock:
            entries: dict[tuple[str, str], str] = {}
            for key, value in self._read().items():
                service, username = json.loads(key)
                entries[service, username] = value
            return entries

    def get_password(self, service: str, username: str) -> str | None:
        with self._lock:
            return self._read().get(self._key(service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.check(password)
        with self._lock:
            data = self._read()
            data[self._key(service, username)] = password
            self._write(data)

    def delete_password(self, service: str, username: str) -> None:
        with self._lock:
            data = self._read()
            if data.pop(self._key(service, username), None) is None:
                raise PasswordDeleteError("Password not found")
            self._write(data)

    def check(self, password: str) -> None:
        """Refuse what the backend could not store; this one takes anything."""


class LimitedJsonFileKeyring(JsonFileKeyring):
    """Refuses secrets over 2,560 bytes of UTF-16, as Windows Credential Manager does."""

    priority = 0.01

    def check(self, password: str) -> None:
        size = len(password.encode("utf-16-le"))
        if size > WINDOWS_BLOB_LIMIT:
            raise PasswordSetError(
                f"{size} bytes is over the {WINDOWS_BLOB_LIMIT}-byte limit (The stub received"
                " bad data)"
            )


class MemoryKeyring(KeyringBackend):
    """A keyring backend in a dict: fast enough for tens of thousands of entries."""

    priority = 0.01

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring leaves it unannotated
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[service, username] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("Password not found")

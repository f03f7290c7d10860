"""The console's two files in the data dir, both owner-only (``0600``):

- ``console-password``: the admin password's scrypt hash (never the password);
- ``console-key``: 32 random bytes that sign session cookies and CSRF tokens.

At the first start with the console on and no password set, a random password is
made, its hash stored, and the password itself written to ``console-initial-password``
for the operator to read once (a file, not a log line: logs are often shipped
elsewhere). Setting a password with ``nwcd admin set-password`` removes that file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from nwcd.console.auth import hash_password, new_password
from nwcd.datadir import FILE_MODE

__all__ = ["Credentials"]


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with an owner-only file holding ``data``."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


class Credentials:
    """Reads and writes the console's files in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.password_path = data_dir / "console-password"
        self.initial_password_path = data_dir / "console-initial-password"
        self.key_path = data_dir / "console-key"

    def password_hash(self) -> str | None:
        try:
            return self.password_path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def set_password(self, password: str) -> None:
        """Store ``password``'s hash (every session ends); forget the initial password.

        Raises:
            ValueError: the password is too short.
        """
        _write_private(self.password_path, hash_password(password).encode())
        with contextlib.suppress(FileNotFoundError):
            self.initial_password_path.unlink()

    def ensure_password(self) -> Path | None:
        """Make a random password if none is set; returns the file that holds it then."""
        if self.password_hash() is not None:
            return None
        password = new_password()
        _write_private(self.initial_password_path, f"{password}\n".encode())
        _write_private(self.password_path, hash_password(password).encode())
        return self.initial_password_path

    def key(self) -> bytes:
        """The signing key, made at first use."""
        try:
            key = self.key_path.read_bytes()
            if len(key) == 32:
                return key
        except FileNotFoundError:
            pass
        key = secrets.token_bytes(32)
        _write_private(self.key_path, key)
        return key

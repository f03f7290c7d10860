"""Owner-only permissions for the data dir, which holds secrets.

``nwcd.sqlite`` holds the wallet keys and ``simulator.sqlite`` the simulator's
seed and every preimage, so the data dir is kept ``0700`` and every file directly
in it ``0600`` (no group or other bits):

* :func:`secure_data_dir` creates the dir ``0700`` if missing (whatever the
  umask), and at every start removes group/other bits from the dir and from each
  regular file directly in it, logging one warning line per change (path, old
  and new mode; never contents). Symlinks are not followed and subdirectories
  are not entered: nwcd puts only files in the data dir.
* :func:`create_private_file` creates an empty file ``0600`` before SQLite opens
  it: SQLite gives the ``-wal``, ``-shm`` and ``-journal`` files it creates the
  permissions of the main database file, so they are owner-only too.

POSIX only: on Windows modes mean little and these calls change close to nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "create_private_file", "secure_data_dir"]

DIR_MODE = 0o700
FILE_MODE = 0o600
_LOOSE = stat.S_IRWXG | stat.S_IRWXO  # 0o077: the bits nobody but the owner should have

log = logging.getLogger("nwcd")


def secure_data_dir(path: Path) -> list[str]:
    """Create ``path`` ``0700`` if missing; strip group/other bits from it and its files.

    Only the dir itself and the regular files directly in it are changed (a mode
    is only ever narrowed: ``0755`` becomes ``0700``, ``0644`` becomes ``0600``);
    symlinks, subdirectories and other entries are left alone. The dir is
    tightened first, so once it is ``0700`` nobody else can swap a file for a
    symlink between the check and the change.

    Returns:
        One line per change, or per mode that could not be changed (each also
        logged at WARNING on the ``nwcd`` logger); empty when all was tight.

    Raises:
        OSError: the dir cannot be created or listed.
    """
    # mkdir's mode is masked by the umask, which can only narrow 0700 further;
    # parents (e.g. ~/.local/share) get the usual mode: they are not ours to lock.
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    notes: list[str] = []
    _tighten(path, stat.S_IMODE(path.stat().st_mode), "data dir", notes)
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # removed meanwhile (a -journal, a -wal)
                continue
            if stat.S_ISREG(info.st_mode):
                _tighten(Path(entry.path), stat.S_IMODE(info.st_mode), "data file", notes)
    for note in notes:
        log.warning("%s", note)
    return notes


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and ``0600`` unless something is there already.

    An existing file (or symlink, or anything else) is left as it is. SQLite
    takes an empty file for a new database.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, flags, FILE_MODE))


def _tighten(path: Path, mode: int, what: str, notes: list[str]) -> None:
    """Drop the group/other bits of ``mode`` from ``path``; note what was done."""
    if not mode & _LOOSE:
        return
    new = mode & ~_LOOSE
    try:
        os.chmod(path, new)
    except FileNotFoundError:
        return
    except OSError as exc:  # e.g. owned by another user
        notes.append(
            f"{what} {path} has mode {mode:04o}; could not change it to {new:04o}: "
            f"{exc.strerror or exc}"
        )
        return
    notes.append(f"{what} {path} had mode {mode:04o}; changed it to {new:04o}")

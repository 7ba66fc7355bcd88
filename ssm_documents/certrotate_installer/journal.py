"""The journal: one JSON record in the root-only state directory, replaced atomically at every phase."""

import contextlib
import enum
import json
import os
from typing import Any, Dict, Optional

from .directories import read_regular
from .output import Exit, InstallError

JOURNAL_NAME = "journal.json"


class Phase(enum.Enum):
    STAGING = "staging"  # writing NAME.certrotate-new files; live files untouched
    SWAPPING = "swapping"  # live files being replaced; the server not reloaded yet
    SWAPPED = "swapped"  # all live files replaced; the server may have been reloaded
    COMMITTING = "committing"  # the new files are served; undo files become the previous files


def replace_state_file(dir_fd: int, name: str, data: bytes) -> None:
    """Replace ``name`` in the state directory atomically (mode 0600, never through a link)."""
    temporary = name + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=dir_fd)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


class Journal:
    """One JSON record in the state directory, replaced atomically at every phase."""

    def __init__(self, dir_fd: int, directory: str) -> None:
        self.dir_fd = dir_fd
        self.path = os.path.join(directory, JOURNAL_NAME)

    def read(self) -> Optional[Dict[str, Any]]:
        data = read_regular(self.dir_fd, JOURNAL_NAME, self.path)
        if data is None:
            return None
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError:
            raise InstallError(
                Exit.ROLLBACK_INCOMPLETE, f"journal {self.path} is unreadable; inspect the certificate files by hand"
            ) from None
        if not isinstance(record, dict):
            raise InstallError(Exit.ROLLBACK_INCOMPLETE, f"journal {self.path} is not a record")
        return record

    def write(self, record: Dict[str, Any]) -> None:
        replace_state_file(self.dir_fd, JOURNAL_NAME, json.dumps(record, sort_keys=True).encode("utf-8"))

    def clear(self) -> None:
        for name in (JOURNAL_NAME, JOURNAL_NAME + ".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self.dir_fd)
        os.fsync(self.dir_fd)

    def phase(self) -> Optional[str]:
        """The phase the journal on disk records (None: no journal), for what the next run will do."""
        try:
            record = self.read()
        except InstallError:
            return "unreadable"
        return None if record is None else str(record.get("phase"))

"""The installer package imported directly (``certrotate_installer`` is on pytest's path, see
pyproject.toml), its built program, and a real unprivileged local user for attacker tests."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rotation.build.installer import build


def write_program(directory: Path) -> Path:
    """The built program (what the documents embed) as a file under ``directory``, for a test to run."""
    path = directory / "certrotate-installer.py"
    path.write_text(build())
    return path


@dataclass(frozen=True)
class LocalUser:
    name: str
    uid: int
    gid: int


def user_problem() -> str | None:
    if os.geteuid() != 0:
        return "attacker tests create a local user: run as root"
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        return "useradd/userdel are not installed"
    return None


@contextlib.contextmanager
def local_user() -> Iterator[LocalUser]:
    """A fresh unprivileged user (``useradd``), removed afterwards with its files."""
    name = f"crattack{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        entry = pwd.getpwnam(name)
        yield LocalUser(name, entry.pw_uid, entry.pw_gid)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)

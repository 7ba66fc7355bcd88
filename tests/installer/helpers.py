"""The installer program imported directly, and a real unprivileged local user for attacker tests."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

from rotation.build.ssm_documents import PROGRAM


def load_program() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_certificate", PROGRAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

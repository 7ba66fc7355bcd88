"""The host's tools (the aws CLI, the server's control tool): found where only root can have put them."""

import os
import shutil
from typing import Dict, List

from .output import Exit, InstallError


def tool_environment(environ: Dict[str, str]) -> Dict[str, str]:
    env = dict(environ)
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    env["LANG"] = env["LC_ALL"] = "C"
    return env


def find_tool(name: str, env: Dict[str, str]) -> str:
    """The first ``name`` on PATH that nobody but root (or the installer's user) can have replaced:
    the file and its directory owned by them and writable by nobody else.

    Raises:
        InstallError: HOST_UNSUPPORTED when there is none.
    """
    euid = os.geteuid()
    skipped: List[str] = []
    for directory in env["PATH"].split(":"):
        if not directory.startswith("/"):
            continue
        found = shutil.which(name, path=directory)
        if found is None:
            continue
        real = os.path.realpath(found)
        try:
            checks = [os.stat(real), os.stat(os.path.dirname(real))]
        except OSError:
            continue
        if all(st.st_uid in (0, euid) and not st.st_mode & 0o022 for st in checks):
            return real
        skipped.append(found)
    where = f"; not used, because another user can change them: {', '.join(skipped)}" if skipped else ""
    raise InstallError(Exit.HOST_UNSUPPORTED, f"{name} is not installed on this host (not in {env['PATH']}){where}")

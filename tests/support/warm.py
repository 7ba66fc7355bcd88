"""The tests' warm starts: the launcher (tests/support/warm_launcher.c) and one fork server per program.

:func:`launchers` compiles the launcher once (gcc; cached on disk by its source and program table, so
the xdist workers share one build) into a directory owned by this user and writable by nobody else,
as the installer's ``find_tool`` requires: ``aws-bin/aws`` (for the documents' PATH) and ``bin/``
(``certrotate``, ``warm-probe``). :func:`socket_for` starts, on first use, the fork server
(tests/support/zygote.py) for a program and the start variables of an environment, with a fresh
``python`` exec from this worker (never a fork of it: it has threads), and gives its socket.
:func:`stop` ends them all (tests/conftest.py calls it at the session's end; each also ends when
its worker exits). Without gcc, or when the build fails, :func:`launchers` is None and every run is
a real exec (also with ``CERTROTATE_TESTS_REAL_EXEC`` set).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support import zygote

SOCKET_VARIABLE = zygote.SOCKET_VARIABLE
HERE = Path(__file__).parent
SOURCE = HERE / "warm_launcher.c"
SERVER = HERE / "zygote.py"
PROBE = HERE / "warm_probe.py"
#: Set (to anything) in the suite's environment, every run is a real exec: to compare, or to rule this out.
REAL_EXEC_VARIABLE = "CERTROTATE_TESTS_REAL_EXEC"


@dataclass(frozen=True)
class Program:
    """One program the launcher can stand in for: what the real exec runs (``interpreter script``, or
    the script alone through its ``#!`` line) and whether it may be served warm (same interpreter)."""

    name: str
    script: str
    interpreter: str = ""
    warm: bool = True


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    parent_pipe: int
    directory: Path

    @property
    def socket(self) -> str:
        return str(self.directory / "socket")


_servers: dict[tuple[str, tuple[tuple[str, str], ...]], Server] = {}
_built: list[Path | None] = []


def _shebang_program(name: str, script: Path) -> Program:
    real = os.path.realpath(script)
    with open(real, "rb") as file:
        first = file.readline().decode(errors="replace")
    interpreter = first[2:].strip() if first.startswith("#!") else ""
    same = bool(interpreter) and os.path.realpath(interpreter) == os.path.realpath(sys.executable)
    return Program(name, real, warm=same)


def programs() -> list[Program]:
    """certrotate (the console script the tests run), aws (the one the documents' tests put first on
    PATH: beside this interpreter, else on PATH) and the fork server's own test probe."""
    from tests.support.cli import SCRIPT

    found = [_shebang_program("certrotate", SCRIPT)] if SCRIPT.is_file() else []
    beside = Path(sys.executable).with_name("aws")
    aws = beside if beside.exists() else Path(shutil.which("aws") or "/nonexistent")
    if aws.exists():
        found.append(_shebang_program("aws", aws))
    found.append(Program("warm-probe", str(PROBE), interpreter=sys.executable))
    return found


def _private(path: Path) -> bool:
    """Owned by this user and writable by nobody else (what find_tool accepts)."""
    try:
        info = path.stat()
    except OSError:
        return False
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _complete(directory: Path, names: list[str]) -> bool:
    paths = [directory, directory / "bin", directory / "aws-bin"] + [directory / "bin" / name for name in names]
    return all(_private(path) for path in paths)


def launchers() -> Path | None:
    """The launchers' directory (compiled on first use), None when gcc is absent or the build fails."""
    if _built:
        return _built[0]
    _built.append(None if os.environ.get(REAL_EXEC_VARIABLE) else _build())
    return _built[0]


def _build() -> Path | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    table = programs()
    header = "static const struct program PROGRAMS[] = {\n"
    header += "".join(
        f"    {{{json.dumps(p.name)}, {json.dumps(p.interpreter)}, {json.dumps(p.script)}, {int(p.warm)}}},\n"
        for p in table
    )
    header += "};\n"
    digest = hashlib.sha256(SOURCE.read_bytes() + header.encode()).hexdigest()[:16]
    root = Path(tempfile.gettempdir()) / f"certrotate-tests-warm-{os.geteuid()}"
    final = root / digest
    names = [p.name for p in table if p.name != "aws"]
    if _private(root) and _complete(final, names):  # another user's directory could swap what it holds
        return final
    root.mkdir(mode=0o755, exist_ok=True)
    if not _private(root):
        return None
    work = Path(tempfile.mkdtemp(dir=root, prefix="build-"))
    try:
        (work / "programs.h").write_text(header)
        built = subprocess.run(
            [
                gcc,
                "-O2",
                "-Wall",
                f'-DWARM_PROGRAMS="{work / "programs.h"}"',
                "-o",
                str(work / "launcher"),
                str(SOURCE),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            return None
        smoke = subprocess.run([work / "launcher"], capture_output=True, check=False)  # a noexec /tmp fails here
        if smoke.returncode != 127 or b"no program named launcher" not in smoke.stderr:
            return None
        for sub, wanted in (("bin", names), ("aws-bin", ["aws"] if any(p.name == "aws" for p in table) else [])):
            (work / sub).mkdir(mode=0o755)
            for name in wanted:
                shutil.copyfile(work / "launcher", work / sub / name)
                (work / sub / name).chmod(0o755)
            (work / sub).chmod(0o755)
        work.chmod(0o755)
        with contextlib.suppress(OSError):  # another worker's build got there first: the same bytes
            work.rename(final)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return final if _complete(final, names) else None


def aws_directory() -> Path | None:
    """The directory holding only the ``aws`` launcher (for a PATH the installer searches)."""
    directory = launchers()
    return directory / "aws-bin" if directory and (directory / "aws-bin" / "aws").is_file() else None


def with_aws(env: dict[str, str], inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` with the aws launcher first on PATH and the socket of the aws fork server started with
    the variables the installer gives its tools (its ``tool_environment``: ``inherited`` (what the SSM
    runner adds ``env`` to), ``env``, ``LANG=C``, ``LC_ALL=C``); ``env`` itself without a launcher.
    The installer still picks its aws CLI as on a host: the first on PATH that only root can change."""
    directory = aws_directory()
    server = socket_for("aws", {**(inherited or {}), **env, "LANG": "C", "LC_ALL": "C"}) if directory else None
    if directory is None or server is None:
        return env
    return {**env, "PATH": f"{directory}:{env.get('PATH', '')}", SOCKET_VARIABLE: server}


def socket_for(program: str, env: dict[str, str]) -> str | None:
    """The socket of the fork server for ``program`` started with ``env``'s start variables (started
    now when there is none yet); None when no launcher could be built."""
    if launchers() is None:
        return None
    start = {k: v for k, v in env.items() if k != SOCKET_VARIABLE}
    key = (program, tuple(sorted(zygote.start_key(program, start).items())))
    server = _servers.get(key)
    if server is not None and server.process.poll() is None:
        return server.socket
    if server is not None:  # it died (its log says why): a new one
        _end(server)
    server = _start(program, start)
    _servers[key] = server
    return server.socket


def _start(program: str, env: dict[str, str]) -> Server:
    if not _servers:
        atexit.register(stop)
    directory = Path(tempfile.mkdtemp(prefix="certrotate-zygote-"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(directory / "socket"))
    listener.listen(64)
    parent_read, parent_write = os.pipe()
    stdin_read, stdin_write = os.pipe()  # stdio like a test's capture (pipes): what the child's objects cache
    stdout_read, stdout_write = os.pipe()
    os.close(stdin_write)
    os.close(stdout_read)
    argv = [sys.executable, str(SERVER), program, str(listener.fileno()), str(parent_read)]
    if "LC_CTYPE" in env:
        argv.append(env["LC_CTYPE"])
    try:
        with open(directory / "log", "wb") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd="/",
                stdin=stdin_read,
                stdout=stdout_write,
                stderr=log,
                pass_fds=(listener.fileno(), parent_read),
            )
    finally:
        for fd in (listener.fileno(), parent_read, stdin_read, stdout_write):
            os.close(fd)
        listener.detach()
    return Server(process, parent_write, directory)


def stop() -> None:
    """End every fork server this process started (and each child still running), remove their sockets."""
    while _servers:
        _key, server = _servers.popitem()
        _end(server)


def _end(server: Server) -> None:
    with contextlib.suppress(OSError):
        os.close(server.parent_pipe)  # the server sees its parent's end close: it kills its children, exits
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    shutil.rmtree(server.directory, ignore_errors=True)


def command(program: str, argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]] | None:
    """``program ARGV`` through the launcher with ``env`` (plus the server's socket), None when it
    cannot be served warm (no launcher; the real exec is then the caller's)."""
    directory = launchers()
    if directory is None or not (directory / "bin" / program).is_file():
        return None
    path = socket_for(program, env)
    if path is None:
        return None
    return [str(directory / "bin" / program), *argv], {**env, SOCKET_VARIABLE: path}


def served(program: str) -> list[int]:
    """The pids of the runs this process's fork servers for ``program`` served (from their logs)."""
    pids = []
    for (name, _key), server in _servers.items():
        if name == program and (server.directory / "log").exists():
            lines = (server.directory / "log").read_text(errors="replace").splitlines()
            pids += [int(line.split()[1].rstrip(":")) for line in lines if line.startswith("served ")]
    return pids


def child_cpu(program: str) -> dict[int, float]:
    """CPU seconds (user + system) of each finished served run, by pid (from the servers' logs)."""
    spent = {}
    for (name, _key), server in _servers.items():
        if name == program and (server.directory / "log").exists():
            for line in (server.directory / "log").read_text(errors="replace").splitlines():
                if line.startswith("done "):
                    spent[int(line.split()[1].rstrip(":"))] = float(line.rsplit(" ", 1)[1])
    return spent

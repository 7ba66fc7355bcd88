"""A pre-imported fork server for the tests' certrotate and aws runs (run as a script by tests/support/warm.py).

Started with a fresh ``python`` exec (never a fork of the pytest worker: it has threads), it imports
what one program imports at start (``--preload certrotate``: rotation.cli and its command modules,
boto3, botocore, cryptography, rich; ``--preload aws``: awscli.clidriver and its handlers), then
serves tests/support/warm_launcher.c on a unix socket: each request is a script, argv, environment,
working directory, umask, process group, signal dispositions and the three stdio fds (SCM_RIGHTS).
For each it forks a child that becomes what a fresh ``python SCRIPT ARGS`` started in that state
would be, runs the installed script itself with :func:`runpy.run_path` (its ``__main__`` code: the
console script's ``rotation.console:main``, awscli's ``clidriver.main()``) and exits as the
interpreter would; the server answers the child's pid, then its wait status.

A request is declined (the launcher then execs the real program) when the variables that shape the
interpreter's start or what the preloaded modules read at import (``PYTHON*``, the locale, ``TZ``,
Powertools' settings) differ from this server's own: the server cannot change those after its start.

One server per program: each imports only what its program imports (Powertools adds a botocore
user-agent hook at import; awscli sets AWS_DATA_PATH), so no child sees another program's imports.
The server ends when the pytest worker that started it closes its end of the parent pipe (or exits),
killing any child still running; a child whose launcher went away (a test's timeout kill) is killed.
Standard library only: it must not import what a child would then find already imported.
"""

from __future__ import annotations

import array
import contextlib
import io
import os
import selectors
import signal
import socket
import sys
import traceback

#: What both programs' botocore imports to send a request (the rest of the preload is each program's own).
_BOTOCORE_REQUESTS = (
    "botocore.endpoint",
    "botocore.httpsession",
    "botocore.parsers",
    "botocore.serialize",
    "botocore.auth",
    "botocore.signers",
    "botocore.retries.standard",
)
PRELOAD = {
    "certrotate": (
        "boto3",
        "boto3.session",
        "botocore.session",
        "botocore.client",
        *_BOTOCORE_REQUESTS,
        "botocore.credentials",
        "botocore.regions",
        "botocore.retries.adaptive",
        "rotation.cli",
        "rotation.cli.ca_rollover",
        "rotation.cli.create_secret",
        "rotation.cli.deploy",
        "rotation.cli.doctor",
        "rotation.cli.hosts",
        "rotation.cli.policy",
        "rotation.cli.revoke",
        "rotation.cli.rotate",
        "rotation.cli.sandbox",
        "rotation.cli.status",
        "rotation.cli.validate",
        "rotation.cli.output",
        "rotation.cli.session",
    ),
    "aws": (
        "awscli.clidriver",
        "awscli.handlers",
        *_BOTOCORE_REQUESTS,
    ),
}
#: Modules never preloaded: their import is the subject (rotation.console installs the Ctrl-C handler
#: from its first line) or leaves state made from the terminal (rotation.cli.demo's rich Console), or
#: changes botocore for every session (moto's stubber).
NEVER = ("rotation.console", "rotation.cli.demo", "moto")
#: Modules re-run in the child for one program: awscli/__init__ sets AWS_DATA_PATH from the environment.
RELOAD = {"aws": ("awscli",)}
#: Variables fixed at the interpreter's start or read by preloaded modules at import.
START_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")
START_PREFIXES = ("PYTHON",)
IMPORT_VARIABLES = {
    "certrotate": ("LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL", "AWS_EXECUTION_ENV", "AWS_LAMBDA_INITIALIZATION_TYPE"),
    "aws": (),
}
IMPORT_PREFIXES = {"certrotate": ("POWERTOOLS_",), "aws": ()}
SOCKET_VARIABLE = "CERTROTATE_TEST_ZYGOTE"


def start_key(program: str, env: dict[str, str]) -> dict[str, str]:
    """The variables of ``env`` a server for ``program`` must have started with to serve it."""
    names = START_VARIABLES + IMPORT_VARIABLES.get(program, ())
    prefixes = START_PREFIXES + IMPORT_PREFIXES.get(program, ())
    return {k: v for k, v in env.items() if k in names or k.startswith(prefixes)}


def parse_request(data: bytes) -> dict[str, object]:
    fields = data.split(b"\0")
    if fields[-1] == b"":
        fields.pop()
    version, script, cwd, umask, pgid, ignored, blocked, argc = fields[:8]
    if version != b"v1":
        raise ValueError(f"unknown request version {version!r}")
    count = int(argc)
    argv = [os.fsdecode(a) for a in fields[8 : 8 + count]]
    env = {}
    for entry in fields[8 + count :]:
        name, _, value = os.fsdecode(entry).partition("=")
        env[name] = value
    return {
        "script": os.fsdecode(script),
        "cwd": os.fsdecode(cwd),
        "umask": int(umask, 8),
        "pgid": int(pgid),
        "ignored": {sig for sig in range(1, 65) if int(ignored, 16) >> (sig - 1) & 1},
        "blocked": {sig for sig in range(1, 65) if int(blocked, 16) >> (sig - 1) & 1},
        "argv": argv,
        "env": env,
    }


def receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    """One request: its bytes and the three fds that came with them."""
    fds = array.array("i")
    data = b""
    while len(data) < 8 or len(data) < 8 + int(data[:8], 16):
        chunk, ancillary, _flags, _addr = conn.recvmsg(1 << 16, socket.CMSG_SPACE(3 * fds.itemsize))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not chunk:
            raise EOFError("the launcher closed the connection mid-request")
        data += chunk
    return data[8:], list(fds)


class Server:
    def __init__(
        self, program: str, listener: socket.socket, parent: int, key: dict[str, str], coerced: dict[str, str]
    ):
        self.program = program
        self.listener = listener
        self.parent = parent
        self.key = key
        self.coerced = coerced  # what the interpreter's start added to its environment (locale coercion)
        self.children: dict[int, socket.socket | None] = {}
        self.selector = selectors.DefaultSelector()
        self.wakeup_r, self.wakeup_w = os.pipe()

    def serve(self) -> None:
        os.set_blocking(self.wakeup_w, False)
        os.set_blocking(self.wakeup_r, False)
        signal.set_wakeup_fd(self.wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        self.selector.register(self.listener, selectors.EVENT_READ, self.accept)
        self.selector.register(self.parent, selectors.EVENT_READ, self.stop)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, self.reap)
        while True:
            for key, _events in self.selector.select():
                key.data()

    def stop(self) -> None:
        for pid in list(self.children):
            self.kill(pid)
        for pid in list(self.children):
            os.waitpid(pid, 0)
        os._exit(0)

    @staticmethod
    def kill(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(30)
        fds: list[int] = []
        try:
            data, fds = receive(conn)
            request = parse_request(data)
            env = request["env"]
            assert isinstance(env, dict)
            env.pop(SOCKET_VARIABLE, None)
            if start_key(self.program, env) != self.key or len(fds) != 3:
                differ = sorted(set(start_key(self.program, env).items()) ^ set(self.key.items()))
                sys.stderr.write(f"declined {request['script']}: {sorted({name for name, _ in differ})}\n")
                conn.sendall(b"declined start variables\n")
                conn.close()
                return
            pid = os.fork()
            if pid == 0:
                self.selector.close()
                child(self.program, request, fds, self.coerced)
            conn.sendall(f"pid {pid}\n".encode())
            sys.stderr.write(f"served {pid}: {request['script']}\n")  # the log tests read to see a run served
        except (OSError, ValueError, EOFError):
            conn.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, lambda: self.gone(pid, conn))

    def gone(self, pid: int, conn: socket.socket) -> None:
        """The launcher closed its end (killed, e.g. on a test's timeout): the child goes too."""
        self.selector.unregister(conn)
        conn.close()
        self.children[pid] = None
        self.kill(pid)

    def reap(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wakeup_r, 512):
                pass
        while self.children:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                return
            sys.stderr.write(f"done {pid}: status {status} cpu {usage.ru_utime + usage.ru_stime:.3f}\n")
            conn = self.children.pop(pid, None)
            if conn is not None:
                self.selector.unregister(conn)
                with contextlib.suppress(OSError):
                    conn.sendall(f"status {status}\n".encode())
                conn.close()


def child(program: str, request: dict[str, object], fds: list[int], coerced: dict[str, str]) -> None:
    """Become what ``python SCRIPT ARGS`` would be at its first line, run the script, exit as it would."""
    code = 70
    try:
        fresh_signals(request["ignored"], request["blocked"])  # type: ignore[arg-type]
        with contextlib.suppress(OSError):  # another session (a detached caller): stay in the server's group
            os.setpgid(0, int(request["pgid"]))  # type: ignore[call-overload]
        os.umask(int(request["umask"]))  # type: ignore[call-overload]
        for number, fd in enumerate(fds):
            os.dup2(fd, number)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.chdir(str(request["cwd"]))
        env = request["env"]
        assert isinstance(env, dict)
        os.environ.clear()
        os.environ.update({**env, **{k: v for k, v in coerced.items() if k not in env}})
        for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
            if isinstance(stream, io.TextIOWrapper) and not stream.write_through:  # buffered: as a new start decides
                stream.reconfigure(line_buffering=fd == 2 or os.isatty(fd))
        script = str(request["script"])
        sys.argv = list(request["argv"])  # type: ignore[call-overload]
        sys.orig_argv = [sys.executable, *sys.argv]
        sys.path.insert(0, os.path.dirname(os.path.realpath(script)))  # as a script's start does
        import importlib

        for name in RELOAD.get(program, ()):
            if name in sys.modules:
                importlib.reload(sys.modules[name])
        code = run_script(script)
    except BaseException:
        traceback.print_exc()
    os._exit(code)


def fresh_signals(ignored: set[int], blocked: set[int]) -> None:
    """The dispositions an exec'd interpreter starts with: the caller's ignored ones stay ignored, every
    other is the default, then what CPython itself sets (SIGPIPE and SIGXFSZ ignored, SIGINT raising
    KeyboardInterrupt unless ignored); the caller's blocked mask."""
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_IGN if sig in ignored else signal.SIG_DFL)
        except (OSError, ValueError):
            continue
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if signal.SIGINT not in ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def run_script(script: str) -> int:
    """Run ``script`` as ``__main__`` and finish as the interpreter does: the exit code of SystemExit,
    a traceback and 1 for any other exception, death by SIGINT for an uncaught KeyboardInterrupt; then
    wait for non-daemon threads, run atexit callbacks and flush stdout and stderr."""
    import atexit
    import runpy
    import threading

    interrupted = False
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exit_code(exc.code)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next  # from the script's own frame, as a fresh start shows it
        if tb is not None:
            exc.__traceback__ = tb  # what the hook prints
        sys.excepthook(type(exc), exc, exc.__traceback__)
        code = 1
    with contextlib.suppress(BaseException):  # the interpreter's exit reports a failure here and goes on
        threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            if stream is sys.stdout and code == 0:
                code = 120
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    with contextlib.suppress(Exception):
        sys.stderr.write(f"{value}\n")
    return 1


def main(argv: list[str]) -> int:
    """``zygote.py PROGRAM LISTENER_FD PARENT_FD [LC_CTYPE_AT_LAUNCH]``: serve PROGRAM until PARENT_FD closes."""
    program, listener_fd, parent_fd = argv[1], int(argv[2]), int(argv[3])
    launched_ctype = argv[4] if len(argv) > 4 else None
    started = dict(os.environ)
    coerced = {}
    if started.get("LC_CTYPE") != launched_ctype and "LC_CTYPE" in started:
        coerced["LC_CTYPE"] = started.pop("LC_CTYPE")  # the interpreter's locale coercion, not the caller
    key = start_key(program, started)
    del sys.path[0]  # this file's directory: each child puts its own script's there
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the worker's; the parent pipe ends us
    for name in PRELOAD.get(program, ()):  # the test probe (tests/support/warm_probe.py): none
        try:
            __import__(name)
        except Exception:  # each run imports it again and fails as a new interpreter would
            continue
    for name in NEVER:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            raise SystemExit(f"zygote: {loaded} was imported by the preload; it must be imported by each run")
    import gc
    import threading

    if threading.active_count() != 1:
        raise SystemExit("zygote: a preloaded module started a thread; forking it would be unsafe")
    sys.stdout.flush()
    gc.collect()
    gc.freeze()  # the imported modules stay shared with every child instead of being copied by the collector
    listener = socket.socket(fileno=listener_fd)
    Server(program, listener, parent_fd, key, coerced).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The fork server's test program: does what its arguments say, so a test can compare a warm run with a real one."""

import json
import os
import signal
import sys
import time


def facts() -> dict[str, object]:
    """What a fresh start decides: the state a served child must reproduce."""
    handlers = {}
    for name in ("SIGINT", "SIGTERM", "SIGPIPE", "SIGXFSZ", "SIGCHLD", "SIGHUP", "SIGUSR1"):
        handler = signal.getsignal(getattr(signal, name))
        handlers[name] = getattr(handler, "__name__", str(handler))
    return {
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "umask": os.umask(0o022),
        "signals": handlers,
        "blocked": sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "stdout": [
            sys.stdout.encoding,
            sys.stdout.errors,
            sys.stdout.line_buffering,
            getattr(sys.stdout, "write_through", None),
        ],
        "stdin": [sys.stdin.encoding, sys.stdin.errors],
        "path0": sys.path[0],
        "executable": sys.executable,
        "pgid": os.getpgid(0),
        "pid": os.getpid(),
        "flags": list(sys.flags),
        "env": dict(os.environ),
        "main": __name__,
        "file": __file__,
    }


def main(argv: list[str]) -> int:
    command, *rest = argv or ["facts"]
    if command == "facts":
        json.dump(facts(), sys.stdout)
    elif command == "echo":
        data = sys.stdin.read()
        sys.stdout.write(data.upper())
        sys.stderr.write(f"read {len(data)}\n")
    elif command == "exit":
        sys.exit(int(rest[0]))
    elif command == "exit-text":
        sys.exit(rest[0])
    elif command == "signal":
        os.kill(os.getpid(), int(rest[0]))
        time.sleep(5)
    elif command == "raise":
        raise RuntimeError("the probe failed on purpose")
    elif command == "interrupt":
        raise KeyboardInterrupt
    elif command == "sleep":
        print(os.getpid(), flush=True)
        time.sleep(float(rest[0]))
    elif command == "atexit":
        import atexit

        atexit.register(lambda: print("atexit ran", flush=True))
        print("main done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

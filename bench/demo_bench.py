"""Benchmark: where ``certrotate demo``'s time goes (imports, moto, rotations, installs, reloads, probes).

Run from the repository root:  python bench/demo_bench.py [--runs 3] [--server apache]

Each run is a fresh interpreter (``python bench/demo_bench.py --one``) that times its own imports,
then runs the demo in process with every phase wrapped: the CA hierarchy in moto, the local
server's start, each rotation (the four Lambda steps), each delivery (the RunUpdateTLS document
run by the local SSM runner: bash, the installer, the aws CLI, the configtest and reload, the
served-truth probes) and each verifying handshake. A phase's figures are wall seconds and CPU
seconds, the latter split into this process (user+sys) and its waited-for children (the
document's programs). The server itself runs as a daemon, so its CPU is not counted. With the
machine shared, CPU is the figure that carries; wall time is printed with the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


PHASES: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])  # wall, own CPU, children CPU, count


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    wall, (own, children) = time.monotonic(), _cpu()
    try:
        yield
    finally:
        after_own, after_children = _cpu()
        figures = PHASES[name]
        figures[0] += time.monotonic() - wall
        figures[1] += after_own - own
        figures[2] += after_children - children
        figures[3] += 1


def wrap(owner: Any, attribute: str, name: str) -> None:
    original: Callable[..., Any] = getattr(owner, attribute)

    def timed(*args: Any, **kwargs: Any) -> Any:
        with phase(name):
            return original(*args, **kwargs)

    setattr(owner, attribute, timed)


def one(server: str) -> dict[str, Any]:
    """One demo in this process, phase by phase (JSON on stdout)."""
    started, cpu_start = time.monotonic(), _cpu()
    with phase("imports (certrotate CLI, moto, boto3)"):
        import moto.server  # noqa: F401

        import rotation.cli  # noqa: F401
        from rotation.cli import demo, demo_targets
        from rotation.emulation import pki, rotation_service
    from moto.server import ThreadedMotoServer

    from rotation.cli import local_apache, local_servers

    wrap(ThreadedMotoServer, "start", "moto: server start")
    wrap(ThreadedMotoServer, "stop", "moto: server stop")
    for harness in (local_apache.LocalApache, local_servers.LocalNginx, local_servers.LocalHaproxy):
        wrap(harness, "stop", "local server stop")
    wrap(pki, "create_ca", "moto: Private CA hierarchy")
    wrap(demo, "open_target", "local server start (placeholders, configtest, start)")
    wrap(rotation_service, "run_steps", "rotation: the four Lambda steps")
    wrap(demo_targets.ApacheTarget, "deliver", "delivery: RunUpdateTLS (installer, aws CLI, reload, 16 probes)")
    wrap(demo_targets.PythonTarget, "deliver", "delivery: Python stand-in")
    wrap(demo, "served_certificate", "verifying TLS handshake")
    wrap(demo, "_rotate_and_serve", "round: rotate each, install side by side, verify (2 rounds)")
    with contextlib.redirect_stdout(io.StringIO()):
        code = demo.run_demo(None, server=server)
    total_own, total_children = (a - b for a, b in zip(_cpu(), cpu_start, strict=True))
    return {
        "code": code,
        "wall": time.monotonic() - started,
        "cpu_own": total_own,
        "cpu_children": total_children,
        "phases": {k: v for k, v in PHASES.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server", default="apache", choices=("apache", "nginx", "haproxy"))
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sys.stdout.write(json.dumps(one(args.server)) + "\n")
        return 0
    runs = []
    for _ in range(args.runs):
        load = os.getloadavg()[0]
        done = subprocess.run(
            [sys.executable, __file__, "--one", "--server", args.server],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["load"] = load
        runs.append(result)
        print(
            f"demo ({args.server}): {result['wall']:5.2f} s wall, CPU {result['cpu_own']:.2f} s own + "
            f"{result['cpu_children']:.2f} s children (load {load:.1f}), exit {result['code']}"
        )
    print(f"median over {len(runs)} runs (wall s / own CPU s / children CPU s / count):")
    for name in runs[0]["phases"]:
        figures = [statistics.median(r["phases"][name][i] for r in runs if name in r["phases"]) for i in range(4)]
        print(f"  {name:<66} {figures[0]:6.2f} {figures[1]:6.2f} {figures[2]:6.2f}  x{figures[3]:.0f}")
    totals = [statistics.median(r[k] for r in runs) for k in ("wall", "cpu_own", "cpu_children")]
    print(f"  {'total':<66} {totals[0]:6.2f} {totals[1]:6.2f} {totals[2]:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

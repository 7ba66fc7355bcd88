"""Benchmark: where the test suite's CPU goes, per test file (its own process and its children).

Run from the repository root, the suite first, then the summary:

    CERTROTATE_SUITE_CPU=/tmp/suite-cpu PYTHONPATH=bench CI=1 python -m pytest -p suite_cpu
    python bench/suite_cpu.py /tmp/suite-cpu [--top 25]

As a pytest plugin (``-p suite_cpu``, loaded in every xdist worker) it appends one JSON line per
test to ``$CERTROTATE_SUITE_CPU/cpu-<worker pid>.jsonl``: the node id, its wall seconds, the CPU
seconds of the worker itself (user + system: in-process moto, the code under test) and of the
children the test waited for (the CLI and aws runs, the installer, openssl, config tests). Servers
left running as daemons are not counted. Run as a script it sums the lines per file, biggest first.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Iterator[None]:
    folder = os.environ.get("CERTROTATE_SUITE_CPU")
    wall, (own, children) = time.monotonic(), _cpu()
    yield
    if folder:
        after_own, after_children = _cpu()
        row = [item.nodeid, time.monotonic() - wall, after_own - own, after_children - children]
        Path(folder).mkdir(parents=True, exist_ok=True)
        with open(Path(folder) / f"cpu-{os.getpid()}.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    rows = [json.loads(line) for path in args.folder.glob("cpu-*.jsonl") for line in path.open(encoding="utf-8")]
    if not rows:
        print(f"no figures in {args.folder}", file=sys.stderr)
        return 1
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for node, wall, own, children in rows:
        figures = files[node.split("::")[0]]
        figures[0] += 1
        figures[1] += wall
        figures[2] += own
        figures[3] += children
    total_own, total_children = sum(r[2] for r in rows), sum(r[3] for r in rows)
    print(f"{len(rows)} tests: {total_own:.0f} s CPU in the workers, {total_children:.0f} s in their children")
    print(f"{'tests':>5} {'wall s':>8} {'own s':>7} {'child s':>8}  file")
    ranked = sorted(files.items(), key=lambda item: -(item[1][2] + item[1][3]))
    for name, (count, wall, own, children) in ranked[: args.top]:
        print(f"{count:5.0f} {wall:8.1f} {own:7.1f} {children:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

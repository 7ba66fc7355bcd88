"""The local servers' harness (rotation/cli/local_*.py) stops every process it started."""

from __future__ import annotations

import time
from pathlib import Path

from rotation.cli.local_harness import process_alive
from tests.integration.conftest import LocalServer


def children(parent: int) -> set[int]:
    """The processes whose parent is ``parent`` (field 4 of /proc/PID/stat)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.add(int(entry.name))
    return found


def test_a_server_whose_config_no_longer_parses_stops_with_all_its_workers(server: LocalServer) -> None:
    """A test that leaves a config its server refuses (``invalid_directive``) still gets the server
    and its workers stopped: ``apache2 -k stop`` parses the config first and fails, which left a
    whole Apache running after tests/integration/test_trust_bundles.py."""
    deadline = time.monotonic() + 10
    while (master := server.master_pid()) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # Apache answers on its port a moment before its pid file is written
    assert master
    while not children(master) and time.monotonic() < deadline:
        time.sleep(0.05)  # the master starts its workers a moment after it writes its pid file
    processes = {master, *children(master)}
    assert len(processes) > 1  # the workers
    with server.config.open("a") as config:
        config.write(server.invalid_directive)

    server.stop()

    assert [pid for pid in processes if process_alive(pid)] == []


def test_a_killed_server_leaves_no_worker_behind(server: LocalServer) -> None:
    """``kill()`` (the demo's end): nginx names its config only in the master's command line, its
    workers are ``nginx: worker process``; found by the config path alone, the master died and its
    workers lived on (four per demo on nginx, seen after every suite run)."""
    deadline = time.monotonic() + 10
    while (master := server.master_pid()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert master
    while not children(master) and time.monotonic() < deadline:
        time.sleep(0.05)  # the master starts its workers a moment after it writes its pid file
    processes = {master, *children(master)}
    assert len(processes) > 1

    server.kill()

    assert [pid for pid in processes if process_alive(pid)] == []

"""The swap and its journal: killed at any point, the next run puts the host back in one piece.

Files are real (a directory under tmp_path) and the killed run really dies of SIGKILL (a forked
child that the program's test-only fault point kills); Apache is a stub recording config tests
and reloads, because what is tested here is the file system protocol. The same points are killed
against the real Apache through the document in tests/integration/test_installer_attacks.py.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from certrotate_installer import (
    directories,
    fleet_record,
    host,
    host_file,
    output,
    parameters,
    path_policy,
    recovery,
    runs,
    swap,
    validation,
)

from tests.support.certs import LocalCA

FILES = ("site.pem", "site.key", "site-chain.pem")
# Every point where a run can die: after staging, after each link/rename of the swap (1-6), after
# the swap, after the reload, after each rename of the commit (7-9).
POINTS = ["staged", *(f"change:{n}" for n in range(1, 7)), "swapped", "reloaded", *(f"change:{n}" for n in (7, 8, 9))]
COMMITTING = {"change:7", "change:8", "change:9"}


@dataclass
class StubApache:
    """Stands in for servers.apache.Apache (its config_test, reload, wait_for, listeners; title in messages)."""

    title = "Apache"
    config_ok: bool = True
    reload_ok: bool = True
    served_ok: bool = True
    listening: bool = True  # whether a process of the server listens on the port (after an undo)
    calls: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # the tools' environment (no SSM agent: no PutInventory)

    def config_test(self) -> tuple[bool, str]:
        self.calls.append("configtest")
        return self.config_ok, "" if self.config_ok else "AH00526: Syntax error"

    def reload(self, mode: str) -> tuple[bool, str]:
        self.calls.append(mode)
        return self.reload_ok, ""

    def wait_for(self, facts: Any, deadline_seconds: float = 30.0) -> StubProof:
        return StubProof(self.served_ok)

    def listeners(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", 443)] if self.listening else []


@dataclass
class StubProof:
    """What the stub's served-truth check answers (the real check: tests/installer/test_served_check.py)."""

    ok: bool

    @property
    def summary(self) -> str:
        return "16/16" if self.ok else "stale: 16/16 serial 01, new: 0/16"

    def why(self, port: int) -> str:
        return "" if self.ok else f"of the last 16 fresh connections to port {port} (in 30.0 s), 16 serial 01"


@dataclass
class Scene:
    root: Path
    old: tuple[bytes, bytes, bytes]
    previous: tuple[bytes, bytes, bytes]
    new: Any  # the program's Bundle

    def live(self) -> tuple[bytes, ...]:
        return tuple((self.root / "tls" / name).read_bytes() for name in FILES)

    def saved(self) -> tuple[bytes, ...]:
        return tuple((self.root / "tls" / f"{name}.certrotate-previous").read_bytes() for name in FILES)

    def work_files(self) -> list[str]:
        return sorted(p.name for p in (self.root / "tls").iterdir() if p.name.endswith(("-new", "-undo")))

    def host(self, apache: StubApache, fault: Any = None) -> Any:
        files = tuple(str(self.root / "tls" / name) for name in FILES)
        request = parameters.Request(parameters.Action.INSTALL, "", "AWSCURRENT", files, "apache2", 443, "graceful")
        state = str(self.root / "state")
        config = host_file.HostConfig("test", (str(self.root / "tls"),), state, state, fault)
        guard = swap.SignalGuard()
        guard.install()
        return host.Host(request, config, apache, 0, guard)

    def targets(self) -> list[Any]:
        files = (str(self.root / "tls" / name) for name in FILES)
        return [
            path_policy.Target(kind, path, directories.open_directory(os.path.dirname(path), 0))
            for kind, path in zip(path_policy.TargetKind, files)
        ]


def contents(issued: Any) -> tuple[bytes, bytes, bytes]:
    parsed = validation.parse_bundle(issued.certificate_pem, issued.private_key_pem, issued.chain_pem, ("c", "k", "ch"))
    return parsed.contents()  # type: ignore[no-any-return]


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    ca = LocalCA(name="Journal CA")
    tls = tmp_path / "tls"
    tls.mkdir(mode=0o755)
    old, previous = contents(ca.issue(["a.test"])), contents(ca.issue(["a.test"]))
    for name, data, saved in zip(FILES, old, previous):
        (tls / name).write_bytes(data)
        (tls / f"{name}.certrotate-previous").write_bytes(saved)
    new = ca.issue(["a.test"])
    parsed = validation.parse_bundle(new.certificate_pem, new.private_key_pem, new.chain_pem, ("c", "k", "ch"))
    saved_handlers = {s: signal.getsignal(s) for s in swap.SIGNALS}
    try:
        yield Scene(tmp_path, old, previous, parsed)
    finally:
        for signum, handler in saved_handlers.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("point", POINTS)
def test_a_run_killed_anywhere_is_undone_or_finished_by_the_next(scene: Scene, point: str) -> None:
    host = scene.host(StubApache(), host_file.Fault(point, int(signal.SIGKILL)))
    targets = scene.targets()
    child = os.fork()
    if child == 0:  # the run that is killed: the program sends itself SIGKILL at the point
        try:
            runs.swap_in(host, targets, scene.new, True)
        finally:
            os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert (scene.root / "state" / "journal.json").exists()

    after = StubApache()
    next_run = scene.host(after)
    recovery.recover(next_run)
    assert not (scene.root / "state" / "journal.json").exists()
    assert scene.work_files() == []
    if point in COMMITTING:  # the new certificate had been served: finish keeping the old as previous
        assert scene.live() == scene.new.contents() and scene.saved() == scene.old
        assert after.calls == []
    else:  # undone: live and previous exactly as before the killed run
        assert scene.live() == scene.old and scene.saved() == scene.previous
        assert after.calls == (["configtest", "graceful"] if point in ("swapped", "reloaded") else [])
    recovery.recover(scene.host(StubApache()))  # nothing left to do: idempotent
    assert scene.live() in (scene.old, scene.new.contents())


@pytest.mark.parametrize(
    ("apache", "code"),
    [
        (StubApache(config_ok=False), 5),
        (StubApache(reload_ok=False), 6),
        (StubApache(served_ok=False), 6),
    ],
    ids=["config test", "reload", "serve check"],
)
def test_a_failure_after_the_swap_restores_and_reloads(scene: Scene, apache: StubApache, code: int) -> None:
    apache.calls.clear()
    with pytest.raises(output.InstallError) as caught:
        runs.swap_in(scene.host(apache), scene.targets(), scene.new, True)
    assert caught.value.code == code and "restored" in caught.value.message
    assert scene.live() == scene.old and scene.saved() == scene.previous and scene.work_files() == []
    assert apache.calls[-2:] == ["configtest", "graceful"] or not apache.config_ok


def test_the_served_check_travels_on_the_outcome_and_the_failure_not_on_the_host(scene: Scene) -> None:
    """Issue 26: the served-truth check's summary is returned by the swap (and carried by its failure),
    and the fleet record writes the one the outcome carries; the run's ``Host`` holds no run state."""
    ran = scene.host(StubApache())
    assert runs.swap_in(ran, scene.targets(), scene.new, True) == "16/16"
    assert not hasattr(ran, "served_check")
    with pytest.raises(output.InstallError) as stale:
        runs.swap_in(scene.host(StubApache(served_ok=False)), scene.targets(), scene.new, True)
    assert stale.value.code == 6 and stale.value.served_check == "stale: 16/16 serial 01, new: 0/16"
    with pytest.raises(output.InstallError) as untested:
        runs.swap_in(scene.host(StubApache(config_ok=False)), scene.targets(), scene.new, True)
    assert untested.value.code == 5 and untested.value.served_check == ""  # no check ran
    files = path_policy.target_files(scene.targets())
    outcome = host.Outcome(parameters.Action.INSTALL, True, scene.new.facts, files, 443, True, None, "15/16 odd")
    fleet_record.record_outcome(ran, outcome)
    fleet_record.record_failure(ran, scene.targets(), 6, "failed", stale.value.served_check)
    state = fleet_record.load_fleet_state(ran.read_state(fleet_record.INVENTORY_STATE))
    (record,) = state.records
    assert record["Status"] == "failed" and record["ServedCheck"] == "stale: 16/16 serial 01, new: 0/16"
    fleet_record.record_outcome(ran, outcome)
    (record,) = fleet_record.load_fleet_state(ran.read_state(fleet_record.INVENTORY_STATE)).records
    assert record["Status"] == "installed" and record["ServedCheck"] == "15/16 odd"


def test_a_rollback_that_leaves_nothing_listening_is_exit_14(scene: Scene) -> None:
    """Issue 25 item 6: the files are restored, but the undo's reload cannot bring the server back
    (nothing of it listens on the port): not an ordinary exit 6, but 14, saying so."""
    apache = StubApache(reload_ok=False, listening=False)
    with pytest.raises(output.InstallError) as caught:
        runs.swap_in(scene.host(apache), scene.targets(), scene.new, True)
    assert caught.value.code == output.Exit.SERVER_DOWN == 14
    assert "restored" in caught.value.message and "could not be brought back" in caught.value.message
    assert scene.live() == scene.old and scene.saved() == scene.previous and scene.work_files() == []


@pytest.mark.parametrize("point", ["staged", "change:1", "change:4", "swapped"])
def test_sigterm_rolls_back_at_once(scene: Scene, point: str) -> None:
    with pytest.raises(output.InstallError) as caught:
        runs.swap_in(
            scene.host(StubApache(), host_file.Fault(point, int(signal.SIGTERM))), scene.targets(), scene.new, True
        )
    assert caught.value.code == output.Exit.INTERRUPTED and "SIGTERM" in caught.value.message
    assert scene.live() == scene.old and scene.saved() == scene.previous and scene.work_files() == []
    assert not (scene.root / "state" / "journal.json").exists()


def test_success_keeps_the_old_pair_as_previous_with_modes(scene: Scene) -> None:
    runs.swap_in(scene.host(StubApache()), scene.targets(), scene.new, True)
    assert scene.live() == scene.new.contents() and scene.saved() == scene.old and scene.work_files() == []
    key = (scene.root / "tls" / "site.key").stat()
    assert key.st_mode & 0o777 == 0o600 and key.st_uid == 0 and key.st_nlink == 1
    assert (scene.root / "tls" / "site.pem").stat().st_mode & 0o777 == 0o644


def test_an_unmatched_old_pair_never_replaces_the_previous_files(scene: Scene) -> None:
    runs.swap_in(scene.host(StubApache()), scene.targets(), scene.new, False)
    assert scene.live() == scene.new.contents() and scene.saved() == scene.previous and scene.work_files() == []


def test_a_first_install_undone_leaves_no_file(tmp_path: Path, scene: Scene) -> None:
    for name in FILES:
        (scene.root / "tls" / name).unlink()
    with pytest.raises(output.InstallError):
        runs.swap_in(scene.host(StubApache(config_ok=False)), scene.targets(), scene.new, False)
    assert sorted(p.name for p in (scene.root / "tls").iterdir() if "previous" not in p.name) == []

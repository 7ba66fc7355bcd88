"""One run of a State Manager association over its targets: the real document on each emulated
host, in batches of MaxConcurrency, stopped by MaxErrors, each target's outcome recorded.

How the service paces a run (``association_rules`` cites it): at most MaxConcurrency targets run
at once; once more than MaxErrors have failed, no further target is sent the run, and those
already running finish. The emulation sends targets in instance-id order, in batches of
MaxConcurrency that run in parallel threads; after a batch, if the failures exceed MaxErrors,
every target not yet sent is recorded ``Skipped``. (The service slides its window as each target
finishes rather than waiting for a batch; batches keep the order and the counts deterministic.)
Each target runs the document through ``ssm_runner`` (parameters checked as SSM checks them, then
each ``aws:runShellScript`` step with sh), in the host's own environment, as its agent would.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rotation.emulation.association_rules import allowed_errors, concurrency
from rotation.emulation.managed_hosts import EmulatedHost
from rotation.emulation.ssm_runner import CommandResult, DocumentParameterError, run_parsed_document

__all__ = ["Execution", "TargetRun", "TargetStatus", "batches", "run_on_targets"]


class TargetStatus(StrEnum):
    """A target's status in DescribeAssociationExecutionTargets."""

    SUCCESS = "Success"
    FAILED = "Failed"
    SKIPPED = "Skipped"


@dataclass(frozen=True)
class TargetRun:
    """What one target did in one run (``batch`` is the 0-based batch it ran in; -1 when skipped)."""

    instance_id: str
    status: TargetStatus
    detailed_status: str
    batch: int
    finished: float
    result: CommandResult | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Execution:
    """One association execution, as DescribeAssociationExecutions and ...Targets report it."""

    execution_id: str
    association_id: str
    association_version: str
    created: float
    max_concurrency: int
    allowed_errors: int
    targets: tuple[TargetRun, ...]

    @property
    def status(self) -> str:
        return "Failed" if any(t.status is TargetStatus.FAILED for t in self.targets) else "Success"

    def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for target in self.targets:
            counts[target.status.value] = counts.get(target.status.value, 0) + 1
        return counts

    def resource_count_by_status(self) -> str:
        """The service's summary string, e.g. ``{Failed=1, Success=2}``."""
        return "{" + ", ".join(f"{k}={v}" for k, v in sorted(self.count_by_status().items())) + "}"


def batches(items: Sequence[EmulatedHost], size: int) -> list[list[EmulatedHost]]:
    """``items`` in order, cut into batches of ``size`` (pure)."""
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def _run_one(
    document: Mapping[str, Any],
    parameters: Mapping[str, str | list[str]],
    host: EmulatedHost,
    *,
    region: str,
    timeout: float,
    batch: int,
    clock: Callable[[], float],
) -> TargetRun:
    try:
        result = run_parsed_document(
            document,
            parameters,
            env=host.environment,
            timeout=timeout,
            instance_id=host.instance_id,
            region=region,
        )
    except DocumentParameterError as exc:  # the document changed under the association: nothing ran
        failed = CommandResult()
        return TargetRun(host.instance_id, TargetStatus.FAILED, f"InvalidParameters: {exc}", batch, clock(), failed)
    status = TargetStatus.SUCCESS if result.ok else TargetStatus.FAILED
    return TargetRun(host.instance_id, status, status.value, batch, clock(), result)


def run_on_targets(
    document: Mapping[str, Any],
    parameters: Mapping[str, str | list[str]],
    hosts: Sequence[EmulatedHost],
    *,
    max_concurrency: str | None,
    max_errors: str | None,
    region: str,
    clock: Callable[[], float],
    timeout: float = 600,
) -> tuple[int, int, tuple[TargetRun, ...]]:
    """Run ``document`` on ``hosts`` under the rate controls; returns the batch size, the failures
    allowed and every target's outcome (in instance-id order).

    MaxConcurrency absent is 100% (API reference); MaxErrors absent lets every target run.
    """
    ordered = sorted(hosts, key=lambda h: h.instance_id)
    size = concurrency(max_concurrency or "100%", len(ordered)) if ordered else 0
    allowed = allowed_errors(max_errors, len(ordered)) if max_errors is not None else len(ordered)
    outcomes: list[TargetRun] = []
    failures = 0
    for index, batch in enumerate(batches(ordered, size) if ordered else []):
        if failures > allowed:
            outcomes += [TargetRun(h.instance_id, TargetStatus.SKIPPED, "Skipped", -1, clock()) for h in batch]
            continue
        run = functools.partial(
            _run_one, document, parameters, region=region, timeout=timeout, batch=index, clock=clock
        )
        with ThreadPoolExecutor(max_workers=len(batch), thread_name_prefix="association-target") as pool:
            runs = list(pool.map(run, batch))
        outcomes += runs
        failures += sum(1 for run in runs if run.status is TargetStatus.FAILED)
    return size, allowed, tuple(outcomes)

"""Run Command's rate controls for one SendCommand: MaxConcurrency and MaxErrors checked, resolved and applied.

What SSM does (sources below; the wording here is ours):

- Both values are strings of 1-7 characters, ``MaxConcurrency`` matching
  ``^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$`` and ``MaxErrors``
  ``^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$`` (botocore ``data/ssm/2014-11-06/service-2.json``,
  shapes ``MaxConcurrency`` and ``MaxErrors``). botocore does not check patterns before it sends, so
  the service refuses a value outside them: a ``ValidationException`` ("Value ... at 'maxConcurrency'
  failed to satisfy constraint"), as ``association_rules`` words it for CreateAssociation.
- Absent, MaxConcurrency is 50 and MaxErrors 0 (SendCommand API reference; moto fills both in).
- MaxConcurrency is how many managed nodes run the command at the same time, a number or a
  percentage of the target set. The queueing system sends to one node, then, once that invocation
  is acknowledged, to two more, growing until MaxConcurrency nodes run; a node that finishes frees
  its place for the next (User Guide, "Run commands at scale", Using concurrency controls,
  https://docs.aws.amazon.com/systems-manager/latest/userguide/send-commands-multiple.html). The
  emulation keeps at most MaxConcurrency nodes running, in instance-id order, and sends the next
  node as one finishes; the ramp (1, then 2 more, ...) waits on acknowledgement, not on completion,
  so it is not modelled. How SSM rounds a percentage is not documented for Run Command; the
  emulation resolves it as for associations (``association_rules.concurrency``: rounded up, at
  least one node; ``allowed_errors``: rounded down, never more failures than the percentage says).
- MaxErrors is how many errors are allowed without the command failing: once one more error than
  MaxErrors has come back (the first with 0, the fourth with 3), the system sends the command to no
  further node; invocations already running finish (same page, Using error controls). Errors are
  invocations ``Failed`` or ``Execution Timed Out`` (Command.ErrorCount and the invocation
  StatusDetails in the API reference; Delivery Timed Out, Undeliverable, Invalid Platform and Access
  Denied do not count).
- An invocation the system no longer sends is ``Terminated`` ("the parent command exceeded its
  MaxErrors limit and subsequent command invocations were canceled by the system", StatusDetails,
  CommandInvocation in the API reference, and the User Guide's "Understanding command statuses",
  https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html). Its
  ``Status`` (the enum has no Terminated) is ``Cancelled``, the enum's value for an invocation the
  system canceled; that pairing is our reading, not documented.
- The command ends ``Failed`` when its errors passed MaxErrors; ``Incomplete`` (StatusDetails) when
  every node was attempted and one or more invocations are not ``Success`` without passing
  MaxErrors; ``Success`` when every invocation succeeded (Command.StatusDetails in the API
  reference; "Understanding command statuses"). Command.Status has no Incomplete value and what SSM
  reports there is not documented: the emulation reports ``Failed``, so no caller reads success from
  a command whose invocations did not all succeed. While an invocation waits for its node's agent
  (Pending, Delayed) the command is not finished: ``InProgress``.
- CompletedCount counts invocations in a terminal state (Terminated included), ErrorCount the
  Failed and Execution Timed Out ones, TargetCount every target (Command in the API reference).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from rotation.emulation.association_rules import (
    MAX_CONCURRENCY,
    MAX_ERRORS,
    allowed_errors,
    check_rate_control,
    concurrency,
)

DEFAULT_MAX_CONCURRENCY = "50"
DEFAULT_MAX_ERRORS = "0"

Node = TypeVar("Node")


class InvocationState(StrEnum):
    """An invocation's StatusDetails as the emulation sets it (Status is the same word unless noted)."""

    IN_PROGRESS = "InProgress"
    SUCCESS = "Success"
    FAILED = "Failed"
    DELAYED = "Delayed"  # Status Pending: the node's agent is offline; not sent
    TERMINATED = "Terminated"  # Status Cancelled: never sent, the command passed MaxErrors

    @property
    def status(self) -> str:
        """The invocation's ``Status`` for this StatusDetails."""
        return {InvocationState.DELAYED: "Pending", InvocationState.TERMINATED: "Cancelled"}.get(self, self.value)


#: Terminal invocation states (CompletedCount) and those that count against MaxErrors (ErrorCount).
TERMINAL = frozenset({InvocationState.SUCCESS, InvocationState.FAILED, InvocationState.TERMINATED})
ERRORS = frozenset({InvocationState.FAILED})


@dataclass(frozen=True)
class RateControls:
    """One command's rate controls as numbers for its target count."""

    max_concurrency: str
    max_errors: str
    window: int
    allowed_errors: int

    @classmethod
    def resolve(cls, max_concurrency: object, max_errors: object, targets: int) -> RateControls:
        """The request's values (defaults when absent) checked and resolved against ``targets``.

        Raises:
            AssociationError: ValidationException naming the field, the value and the constraint.
        """
        concurrency_value = check_rate_control(
            "maxConcurrency", DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency, MAX_CONCURRENCY
        )
        errors_value = check_rate_control(
            "maxErrors", DEFAULT_MAX_ERRORS if max_errors is None else max_errors, MAX_ERRORS
        )
        return cls(
            concurrency_value,
            errors_value,
            concurrency(concurrency_value, max(targets, 1)),
            allowed_errors(errors_value, targets),
        )


def check_request(max_concurrency: object, max_errors: object) -> None:
    """Refuse a SendCommand whose rate controls break the model (before anything else is looked at).

    Raises:
        AssociationError: ValidationException naming the field, the value and the constraint.
    """
    RateControls.resolve(max_concurrency, max_errors, 0)


def command_state(states: Sequence[InvocationState], allowed: int) -> tuple[str, str]:
    """The command's ``Status`` and ``StatusDetails`` from its invocations' states (pure)."""
    errors = sum(1 for s in states if s in ERRORS)
    if errors > allowed:
        return "Failed", "Failed"
    if any(s not in TERMINAL for s in states):
        return "InProgress", "InProgress"
    if all(s is InvocationState.SUCCESS for s in states):
        return "Success", "Success"
    return "Failed", "Incomplete"


def send_within_limits(
    nodes: Sequence[Node],
    run: Callable[[Node], bool],
    *,
    window: int,
    allowed: int,
    never_sent: Callable[[Sequence[Node]], None],
    name: str = "invocation",
) -> None:
    """Run ``run`` on ``nodes`` in order, at most ``window`` at once, the next as one finishes; once
    more than ``allowed`` runs returned False, send no further node and hand the rest to
    ``never_sent``. Returns when every run that started has finished."""
    done = threading.Condition()
    running = 0
    errors = 0
    threads: list[threading.Thread] = []

    def one(node: Node) -> None:
        nonlocal running, errors
        ok = False
        try:
            ok = run(node)
        finally:
            with done:
                running -= 1
                errors += 0 if ok else 1
                done.notify_all()

    def may_go_on() -> bool:
        return running < window or errors > allowed

    sent = 0
    with done:
        while sent < len(nodes):
            done.wait_for(may_go_on)
            if errors > allowed:
                break
            running += 1
            thread = threading.Thread(target=one, args=(nodes[sent],), name=f"{name}-{sent}", daemon=True)
            threads.append(thread)
            thread.start()
            sent += 1
        if sent < len(nodes):
            never_sent(nodes[sent:])
    for thread in threads:
        thread.join()

"""SendCommand in the sandbox: it runs on the emulated managed nodes only, as SSM does.

moto's SendCommand accepts any instance id and reports every invocation ``Success`` without running
anything; a deploy in the sandbox then looked done on hosts that do not exist. Real SSM runs a
command on managed nodes only (an instance whose SSM Agent has registered with the endpoint and that
is not shutting down or terminated). Given ``InstanceIds`` of which one is not a managed node,
SendCommand itself fails with the error code ``InvalidInstanceId``: the SendCommand reference lists
it among the operation's errors, and its description gives those causes (an agent not running or not
registered, a node in an invalid state, no permission). Sources: botocore's
``SSM.Client.exceptions.InvalidInstanceId``
(https://docs.aws.amazon.com/botocore/latest/reference/services/ssm/client/exceptions/InvalidInstanceId.html)
and the SDK reference of SendCommand's errors
(https://docs.aws.amazon.com/sdkfornet/v3/apidocs/items/SSM/MSSMSendCommandSendCommandRequest.html).
``Targets`` resolve to the managed nodes that carry the tags. Without ``hosts`` (the sandbox
without ``--hosts``) no SSM Agent registers with the sandbox's moto, so:

- ``InstanceIds``: refused, ``InvalidInstanceId`` (HTTP 400), naming the ids and saying that this is
  the sandbox's emulation (the message is ours; the code is SSM's);
- ``Targets``: the command is created with no instance (moto would add tagged EC2 instances, which
  are not managed nodes either), so ``certrotate deploy`` reports that it reached no instance.

With ``hosts`` (:class:`~rotation.emulation.managed_hosts.ManagedHosts`), ids that are managed nodes
are accepted (any other id still refuses the whole request), ``Targets`` resolve to the nodes as an
association's do, a missing document is ``InvalidDocument`` and parameters the document refuses
are ``InvalidParameters`` (both among SendCommand's errors), before any command exists. Then the
command runs: moto answers with the command ``InProgress`` and each invocation ``InProgress`` with
ResponseCode -1 (GetCommandInvocation: -1 until the node ran it) and empty output; the document,
read from moto's SSM, runs on each online node it is sent to, in the node's environment (``ssm_runner``:
parameters checked, each ``aws:runShellScript`` step with sh), and each invocation then reports
``Success`` or ``Failed`` with the script's exit code, the first 24,000 characters of its stdout
and the first 8,000 of its stderr (GetCommandInvocation's StandardOutputContent and
StandardErrorContent, API reference). A node whose agent is offline is never sent the command: its
invocation stays ``Pending`` with StatusDetails ``Delayed`` (the target was not available and the
system will try again, GetCommandInvocation StatusDetails; the emulation does not retry), and the
command stays ``InProgress`` while one waits. ``MaxConcurrency`` and ``MaxErrors`` are checked
against the API model before anything else (``ValidationException``) and applied as Run Command
applies them (``command_rate_controls`` cites how): at most MaxConcurrency online nodes run at once,
the next sent as one finishes; once the failures pass MaxErrors no further node is sent and every
invocation not sent (offline ones included) ends ``Cancelled``/``Terminated``; the command ends
``Success``, ``Failed`` (past MaxErrors) or ``Failed``/``Incomplete`` (a failure within MaxErrors),
with ``TargetCount``, ``CompletedCount`` and ``ErrorCount`` counted as SSM counts them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from moto.core.exceptions import ServiceException

from rotation.emulation.association_rules import Target, association_parameters
from rotation.emulation.command_rate_controls import (
    ERRORS,
    TERMINAL,
    InvocationState,
    RateControls,
    check_request,
    command_state,
    send_within_limits,
)
from rotation.emulation.managed_hosts import EmulatedHost, ManagedHosts
from rotation.emulation.moto_patch import replaced

NO_MANAGED_NODES = (
    "certrotate sandbox: no SSM Agent registers with this emulated account, so no instance is a managed node"
)


class InvalidInstanceIdError(ServiceException):
    """SSM's ``InvalidInstanceId`` (HTTP 400)."""

    def __init__(self, instance_ids: list[str], account: str) -> None:
        super().__init__(
            "InvalidInstanceId",
            f"Instances [{', '.join(instance_ids)}] not in a valid state for account {account} ({NO_MANAGED_NODES})",
        )


#: GetCommandInvocation's StandardOutputContent and StandardErrorContent: the first 24,000 and 8,000 characters.
STDOUT_LIMIT, STDERR_LIMIT = 24_000, 8_000
DEFAULT_TIMEOUT_SECONDS = 3600.0


@contextlib.contextmanager
def ssm_commands_in_moto(hosts: ManagedHosts | None = None) -> Iterator[None]:
    """moto's SendCommand reaches ``hosts``' managed nodes only (none when None), for the duration."""
    from moto.ssm.models import Command, SimpleSystemManagerBackend
    from moto.ssm.responses import SimpleSystemManagerResponse

    original_send = SimpleSystemManagerResponse.send_command
    original_backend_send = SimpleSystemManagerBackend.send_command

    def send_command(self: Any) -> Any:
        check_request(self._get_param("MaxConcurrency"), self._get_param("MaxErrors"))
        instance_ids = [str(i) for i in self._get_param("InstanceIds", [])]
        unknown = [i for i in instance_ids if hosts is None or not _known(hosts, i)]
        if unknown:
            raise InvalidInstanceIdError(unknown, self.current_account)
        if hosts is not None:  # refused before the command exists, as SSM refuses the request
            _checked_parameters(
                self.current_account, self.region, self._get_param("DocumentName"), self._get_param("Parameters")
            )
        answer = original_send(self)
        run = getattr(_UNSENT, "run", None)  # the nodes start once SSM has answered (InProgress)
        _UNSENT.run = None
        if run is not None:
            run.start()
        return answer

    def managed_nodes(self: Any) -> list[str]:
        if hosts is None:
            return []
        targets = [Target(str(t["Key"]), tuple(str(v) for v in t["Values"])) for t in self.targets]
        return [h.instance_id for h in hosts.resolve(targets)]

    def backend_send(backend: Any, **request: Any) -> Any:
        command = original_backend_send(backend, **request)
        if hosts is not None and command.instance_ids:
            _UNSENT.run = _dispatch(hosts, command, backend.account_id, backend.region_name)
        return command

    with (
        replaced(SimpleSystemManagerResponse, send_command=send_command),
        replaced(SimpleSystemManagerBackend, send_command=backend_send),
        replaced(Command, _get_instance_ids_from_targets=managed_nodes),
    ):
        yield


def _checked_parameters(
    account: str, region: str, document_name: object, parameters: object
) -> tuple[dict[str, Any], dict[str, str | list[str]]]:
    """The document and the request's ``Parameters`` as its parameters take them.

    Raises:
        AssociationError: InvalidDocument (missing, not a Command document) or InvalidParameters (a
            value the document refuses: SendCommand's errors list both).
    """
    from rotation.emulation.association_rules import AssociationError
    from rotation.emulation.ssm_runner import DocumentParameterError, resolve_parameters
    from rotation.emulation.state_manager import load_command_document

    document = load_command_document(account, region, document_name, "$DEFAULT")
    converted = association_parameters(document, parameters or {})
    try:
        resolve_parameters(document, converted)
    except DocumentParameterError as exc:
        raise AssociationError("InvalidParameters", f"Parameters for {document_name}: {exc}") from None
    return document, converted


def _known(hosts: ManagedHosts, instance_id: str) -> bool:
    try:
        hosts.get(instance_id)
    except KeyError:
        return False
    return True


#: The request thread's command run, started once the response is built.
_UNSENT = threading.local()


def _dispatch(hosts: ManagedHosts, command: Any, account: str, region: str) -> threading.Thread:
    """Mark the command and its invocations in progress; returns the thread that runs it on the nodes."""
    document, parameters = _checked_parameters(account, region, command.document_name, command.parameters)
    nodes = [hosts.get(i) for i in sorted(command.instance_ids)]
    limits = RateControls.resolve(command.max_concurrency, command.max_errors, len(nodes))
    states = {node.instance_id: InvocationState.IN_PROGRESS for node in nodes}
    lock = threading.Lock()

    def settle(instance_id: str, state: InvocationState, **fields: Any) -> None:
        with lock:
            states[instance_id] = state
            _invocation(command, instance_id).update(Status=state.status, StatusDetails=state.value, **fields)
            command.completed_count = sum(1 for s in states.values() if s in TERMINAL)
            command.error_count = sum(1 for s in states.values() if s in ERRORS)

    command.status, command.status_details = "InProgress", "InProgress"
    command.target_count, command.completed_count, command.error_count = len(nodes), 0, 0
    for invocation in command.invocations:
        invocation.update(Status="InProgress", StatusDetails="InProgress", ResponseCode=-1)
    online = [node for node in nodes if hosts.online(node.instance_id)]
    for node in nodes:
        if node not in online:
            settle(node.instance_id, InvocationState.DELAYED)
    timeout = float(command.timeout_seconds or DEFAULT_TIMEOUT_SECONDS)

    def run(node: EmulatedHost) -> bool:
        state, fields = _run_on(document, parameters, node, region, timeout)
        settle(node.instance_id, state, **fields)
        return state is InvocationState.SUCCESS

    def never_sent(rest: Sequence[EmulatedHost]) -> None:
        waiting = [n for n in nodes if states[n.instance_id] is InvocationState.DELAYED]
        for node in [*rest, *waiting]:  # the system cancels every invocation it has not delivered
            settle(node.instance_id, InvocationState.TERMINATED)

    def run_all() -> None:
        send_within_limits(
            online,
            run,
            window=limits.window,
            allowed=limits.allowed_errors,
            never_sent=never_sent,
            name=f"send-command-{command.command_id}",
        )
        with lock:
            command.status, command.status_details = command_state(list(states.values()), limits.allowed_errors)

    return threading.Thread(target=run_all, name=f"send-command-{command.command_id}", daemon=True)


def _invocation(command: Any, instance_id: str) -> dict[str, Any]:
    return next(i for i in command.invocations if i["InstanceId"] == instance_id)


def _run_on(
    document: Mapping[str, Any],
    parameters: Mapping[str, str | list[str]],
    node: EmulatedHost,
    region: str,
    timeout: float,
) -> tuple[InvocationState, dict[str, Any]]:
    """Run the document on ``node``; its outcome and the invocation fields it sets."""
    from rotation.emulation.ssm_runner import DocumentParameterError, run_parsed_document

    try:
        result = run_parsed_document(
            document, parameters, env=node.environment, timeout=timeout, instance_id=node.instance_id, region=region
        )
    except DocumentParameterError as exc:  # SSM would have refused the request; nothing ran
        return InvocationState.FAILED, {"ResponseCode": 1, "StandardErrorContent": str(exc)}
    return InvocationState.SUCCESS if result.ok else InvocationState.FAILED, {
        "ResponseCode": next((s.exit_code for s in result.steps if s.exit_code != 0), 0),
        "StandardOutputContent": result.stdout[:STDOUT_LIMIT],
        "StandardErrorContent": result.stderr[:STDERR_LIMIT],
    }

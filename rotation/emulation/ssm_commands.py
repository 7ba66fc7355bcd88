"""SendCommand in the sandbox: no instance is a managed node, so SSM refuses or reaches none.

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
``Targets`` resolve to the managed nodes that carry the tags. No SSM Agent registers with the
sandbox's moto, so:

- ``InstanceIds``: refused, ``InvalidInstanceId`` (HTTP 400), naming the ids and saying that this is
  the sandbox's emulation (the message is ours; the code is SSM's);
- ``Targets``: the command is created with no instance (moto would add tagged EC2 instances, which
  are not managed nodes either), so ``certrotate deploy`` reports that it reached no instance.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from moto.core.exceptions import ServiceException

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


@contextlib.contextmanager
def ssm_commands_in_moto() -> Iterator[None]:
    """moto's SendCommand refuses instance ids and resolves tag targets to no instance, for the duration."""
    from moto.ssm.models import Command
    from moto.ssm.responses import SimpleSystemManagerResponse

    original_send = SimpleSystemManagerResponse.send_command

    def send_command(self: Any) -> Any:
        instance_ids = self._get_param("InstanceIds", [])
        if instance_ids:
            raise InvalidInstanceIdError(list(instance_ids), self.current_account)
        return original_send(self)

    def no_managed_nodes(self: Any) -> list[str]:
        return []

    with (
        replaced(SimpleSystemManagerResponse, send_command=send_command),
        replaced(Command, _get_instance_ids_from_targets=no_managed_nodes),
    ):
        yield

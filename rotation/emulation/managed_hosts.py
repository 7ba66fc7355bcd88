"""The emulated managed nodes: which instances exist, their tags, whether their agent is online,
and the environment their agent runs a command in (the host file, the aws CLI).

On AWS an association's targets are resolved by the service: ``InstanceIds`` names nodes, a
``tag:KEY`` target matches the nodes carrying that tag with at least one of the values given,
``InstanceIds`` ``*`` matches every node (User Guide, "About targets and rate controls in State
Manager associations", docs.aws.amazon.com/systems-manager/latest/userguide/
systems-manager-state-manager-targets-and-rate-controls.html). A node
whose agent is offline (instance stopped) runs nothing; the SSM Agent applies its associations
again once it is back (``state_manager`` models that catch-up). Here a host is a local TLS server
(Apache, nginx, HAProxy on a loopback port) with its own host file: ``environment`` carries
``CERTROTATE_INSTALLER_CONFIG``, so an association that sends ``SecretArn`` alone installs where
the host file says, as on a fleet.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rotation.emulation.association_rules import INSTANCE_ID, INSTANCE_IDS_KEY, TAG_PREFIX, AssociationError, Target


class Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class EmulatedHost:
    """One managed node: its id, tags, and what its agent runs commands with."""

    instance_id: str
    tags: Mapping[str, str]
    environment: Mapping[str, str]
    server: Startable | None = field(default=None, compare=False)

    def matches(self, target: Target) -> bool:
        if target.key == INSTANCE_IDS_KEY:
            return "*" in target.values or self.instance_id in target.values
        return self.tags.get(target.key[len(TAG_PREFIX) :]) in target.values


class ManagedHosts:
    """The account's managed nodes (a registry shared by the service's threads)."""

    def __init__(self) -> None:
        self._hosts: dict[str, EmulatedHost] = {}
        self._online: set[str] = set()
        self._lock = threading.Lock()

    def register(
        self,
        instance_id: str,
        *,
        tags: Mapping[str, str],
        environment: Mapping[str, str],
        server: Startable | None = None,
    ) -> EmulatedHost:
        """A node that has registered with Systems Manager (agent online).

        Raises:
            ValueError: the id is not an instance id, or is registered already.
        """
        if not INSTANCE_ID.match(instance_id):
            raise ValueError(f"instance id {instance_id!r} is not i-<8 or 17> or mi-<17> characters")
        host = EmulatedHost(instance_id, dict(tags), dict(environment), server)
        with self._lock:
            if instance_id in self._hosts:
                raise ValueError(f"instance {instance_id} is registered already")
            self._hosts[instance_id] = host
            self._online.add(instance_id)
        return host

    def stop(self, instance_id: str) -> None:
        """The instance stops: its agent goes offline and its server with it."""
        host = self.get(instance_id)
        with self._lock:
            self._online.discard(instance_id)
        if host.server is not None:
            host.server.stop()

    def start(self, instance_id: str) -> None:
        """The instance starts again: its server, then its agent."""
        host = self.get(instance_id)
        if host.server is not None:
            host.server.start()
        with self._lock:
            self._online.add(instance_id)

    def get(self, instance_id: str) -> EmulatedHost:
        with self._lock:
            try:
                return self._hosts[instance_id]
            except KeyError:
                raise KeyError(f"no managed node {instance_id}") from None

    def online(self, instance_id: str) -> bool:
        with self._lock:
            return instance_id in self._online

    def check_known(self, targets: Sequence[Target]) -> None:
        """Every instance id a target names must be a managed node of the account.

        Raises:
            AssociationError: InvalidInstanceId naming the unknown ids. The API model lists it for
                CreateAssociation and gives "SSM Agent isn't registered with the SSM endpoint" among
                its causes; InvalidTarget ("The target isn't valid or doesn't exist") would fit too,
                and which of the two the service returns for an unknown id under ``Targets`` is not
                documented. The emulation refuses at the request, never accepting an id it cannot run.
        """
        with self._lock:
            unknown = [
                value
                for target in targets
                if target.key == INSTANCE_IDS_KEY
                for value in target.values
                if value != "*" and value not in self._hosts
            ]
        if unknown:
            raise AssociationError(
                "InvalidInstanceId", f"Targets InstanceIds {', '.join(unknown)}: not a managed node of this account"
            )

    def resolve(self, targets: Sequence[Target]) -> list[EmulatedHost]:
        """The nodes any of ``targets`` matches, online or not, in instance-id order."""
        with self._lock:
            hosts = sorted(self._hosts.values(), key=lambda h: h.instance_id)
        return [h for h in hosts if any(h.matches(t) for t in targets)]

    def describe(self) -> list[dict[str, Any]]:
        """What DescribeInstanceInformation would say of each node (id and ping status)."""
        with self._lock:
            return [
                {"InstanceId": i, "PingStatus": "Online" if i in self._online else "ConnectionLost"}
                for i in sorted(self._hosts)
            ]

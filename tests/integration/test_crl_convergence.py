"""Issue 28: a revoked client certificate is refused within one convergence after revocation.

The CRL refresh runs as the templates deploy it: the workload template's ``CrlRefreshAssociation``
(InstallCRL on ``CrlRefreshSchedule``, default 30 minutes, for the instances tagged ``certrotate:crl``
= ``refresh``) is created on emulated State Manager with the template's own properties and defaults.
One timeline, emulated, drives everything: State Manager's schedule (``EmulatedClock``) and the
emulated Private CA (``rotation.emulation.pca_clock``: the first CRL, the revocation's time, and its
publication "approximately 30 minutes" later on the documented :class:`CrlSchedule`). The timeline
starts two hours before the wall clock, so every CRL is current for the host and its server.

What runs for real: moto's server (Private CA, S3, SSM documents and inventory; State Manager from
rotation.emulation), each association run through the local SSM runner, the installer and the aws CLI,
and a Debian apache2 on loopback asking for client certificates, refusing or accepting real handshakes.
One server kind: test_crl_servers.py proves the three.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from rotation.build.ssm_documents import DOCUMENTS_DIR
from rotation.build.templates import OUTPUT
from rotation.emulation.association_api import state_manager_in_moto
from rotation.emulation.pca_clock import ca_clock
from rotation.emulation.pca_crl import publish_due_crls
from rotation.emulation.ssm_inventory import ssm_inventory_in_moto
from rotation.fleet.association_schedule import rate_minutes
from rotation.fleet.crl_facts import PUBLICATION_DELAY
from tests.integration.test_crl_servers import CRL_TYPE, Pki, _start, add_crl_directive, crl_path, host_file, tally
from tests.support.fleet import EmulatedClock

OPTED_IN, UNTAGGED = "i-0c71c0000000000a1", "i-0c71c0000000000b2"


def association_as_deployed(name: str = "workload-account.yaml") -> dict[str, Any]:
    """The CRL refresh association's CreateAssociation request as CloudFormation makes it from the
    rendered template: each ``Ref`` resolved to its parameter's default or the document's name."""
    template = yaml.safe_load((OUTPUT / name).read_text())
    parameters, resources = template["Parameters"], template["Resources"]

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            ref = value["Ref"]
            return parameters[ref]["Default"] if ref in parameters else resources[ref]["Properties"]["Name"]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    resolved: dict[str, Any] = resolve(resources["CrlRefreshAssociation"]["Properties"])
    return resolved


def register_crl_document(ssm: Any) -> None:
    with contextlib.suppress(ssm.exceptions.DocumentAlreadyExists):
        ssm.create_document(
            Name="InstallCRL",
            Content=(DOCUMENTS_DIR / "InstallCRL.yaml").read_text(),
            DocumentType="Command",
            DocumentFormat="YAML",
        )


def colon_serial(serial: int) -> str:
    text = f"{serial:x}"
    text = text.rjust(len(text) + len(text) % 2, "0")
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


@pytest.mark.slow
def test_the_refresh_association_refuses_a_revoked_client_at_its_first_run_after_publication(
    moto_endpoint: str, host_env: dict[str, str], tmp_path: Path
) -> None:
    clock = EmulatedClock(now=float(int(time.time()) - 2 * 3600))
    start = clock.now

    def ca_time() -> datetime:
        return datetime.fromtimestamp(clock.now, UTC)

    def published_here() -> list[Any]:
        return [p for p in publish_due_crls(ca_time()) if p.ca_arn == pki.a]

    with ca_clock(ca_time), ssm_inventory_in_moto(), state_manager_in_moto(clock=clock) as service:
        pki = Pki(moto_endpoint)
        ssm = pki.aws("ssm")
        register_crl_document(ssm)
        server = _start("apache", tmp_path / "apache", pki)
        try:
            good, bad = (pki.client(pki.a, tmp_path, f"{role}-{uuid.uuid4().hex[:6]}") for role in ("good", "bad"))
            # Root's opt-in on the host: the host-file keys and the server's directive, then the tag.
            host_file(server, [pki.s3_source(pki.a)], https_port=server.port)
            add_crl_directive(server, crl_path(server))
            environment = {**host_env, **server.installer_environment()}
            service.hosts.register(OPTED_IN, tags={"certrotate:crl": "refresh"}, environment=environment, server=server)
            service.hosts.register(UNTAGGED, tags={"certrotate:secret": "certs/web"}, environment=environment)

            request = association_as_deployed()
            association = ssm.create_association(**request)["AssociationDescription"]
            interval = timedelta(minutes=rate_minutes(association["ScheduleExpression"]) or 0)
            assert interval == timedelta(minutes=30)

            def run() -> str:
                """The association's run due now on the tagged node (the untagged one is never a target)."""
                (execution,) = service.run_due_associations()
                assert execution.association_id == association["AssociationId"]
                (target,) = execution.targets
                assert target.instance_id == OPTED_IN
                status: str = target.status.value
                return status

            def record() -> dict[str, str]:
                (entry,) = ssm.list_inventory_entries(InstanceId=OPTED_IN, TypeName=CRL_TYPE)["Entries"]
                return dict(entry)

            # Created: State Manager applies it at once; the CA's first CRL goes on the host.
            assert run() == "Success"
            assert record()["Status"] == "installed"
            assert tally(server, good, 3) == tally(server, bad, 3) == 3

            clock.advance(5)
            pki.pca.revoke_certificate(
                CertificateAuthorityArn=pki.a, CertificateSerial=colon_serial(bad[2]), RevocationReason="KEY_COMPROMISE"
            )
            revoked_at = clock.now
            assert published_here() == []

            # The next scheduled run comes before Private CA publishes (30 minutes after the revocation).
            clock.now = start + interval.total_seconds()
            assert published_here() == []
            assert run() == "Success" and record()["Status"] == "unchanged"
            assert tally(server, bad, 3) == 3, "refused before the CA published: the test would prove nothing"

            clock.now = revoked_at + PUBLICATION_DELAY.total_seconds()
            (publication,) = published_here()
            assert publication.reason == "revocation" and bad[2] in publication.serials
            assert service.run_due_associations() == []  # published, not yet on the host
            assert tally(server, bad, 3) == 3

            # The association's next run after the publication: the revoked client is refused.
            clock.now = start + 2 * interval.total_seconds()
            assert run() == "Success"
            assert tally(server, bad, 6) == 0, "the revoked client is still accepted"
            assert tally(server, good, 12) == 12, "a valid client was refused"
            crl = x509.load_pem_x509_crl(crl_path(server).read_bytes())
            entry = crl.get_revoked_certificate_by_serial_number(bad[2])
            assert entry is not None and entry.revocation_date_utc.timestamp() == revoked_at
            assert crl.last_update_utc.timestamp() == publication.at.timestamp()
            assert record()["Status"] == "installed"
            # "One convergence": publication delay plus at most one interval of the schedule.
            assert timedelta(seconds=clock.now - revoked_at) <= PUBLICATION_DELAY + interval
            executions = ssm.describe_association_executions(AssociationId=association["AssociationId"])
            assert len(executions["AssociationExecutions"]) == 3
        finally:
            server.stop()

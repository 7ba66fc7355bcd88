"""``certrotate demo``: the product end to end on this machine, with no AWS account.

moto runs Secrets Manager, ACM and Private CA in process. A root and an issuing CA are created,
then the two secrets of the original walkthrough (an ACM-issued certificate and a Private CA
template certificate with key type, size and hash options); each is rotated through the real
Lambda handler, driven as Secrets Manager drives it; the result is served by a local TLS
server and proven by a handshake that trusts only the CA; then a rotate-now proves the served
certificate changes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from rotation.cli.demo_targets import DemoSecret, Target, open_target
from rotation.cli.local_apache import free_port
from rotation.cli.tls_server import served_certificate
from rotation.errors import CertRotateError
from rotation.issuance.bundle import CertBundle
from rotation.lifecycle.guard import ROTATE_NOW_TAG

REGION = "us-east-1"
console = Console(highlight=False)


def _secrets(issuing: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (
            "ACM-issued (use case 1)",
            {
                "CERTIFICATE_TYPE": "ACM_ISSUED",
                "CA_ARN": issuing,
                "COMMON_NAME": "server1.example",
                "ENVIRONMENT": "TEST",
            },
        ),
        (
            "Private CA template (use case 2)",
            {
                "CERTIFICATE_TYPE": "PCA_ISSUED",
                "CA_ARN": issuing,
                "COMMON_NAME": "server2.example",
                "TEMPLATE_ARN": "arn:aws:acm-pca:::template/EndEntityCertificate/V1",
                "KEY_ALGORITHM": "TYPE_RSA",
                "KEY_SIZE": "2048",
                "SIGNING_ALGORITHM": "RSA",
                "SIGNING_HASH": "sha256",
                "ENVIRONMENT": "DEV",
            },
        ),
    ]


@contextlib.contextmanager
def _offline_aws(region: str) -> Iterator[None]:
    """Credentials and settings that keep every call inside moto, whatever the caller's shell holds."""
    saved = dict(os.environ)
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_SESSION_TOKEN",
    ):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="certrotate-demo",
        AWS_SECRET_ACCESS_KEY="certrotate-demo",  # noqa: S106 - moto accepts any
        AWS_DEFAULT_REGION=region,
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_demo(
    workdir: str | None,
    *,
    use_apache: bool = True,
    region: str | None = None,
    out: Any = None,
    server: str = "apache",
) -> int:
    """Run the demo in ``region`` (moto's, default us-east-1) against ``server`` (apache, nginx or
    haproxy, Debian's, when installed); returns the exit code.

    With ``out`` in JSON mode the narration goes to stderr and stdout gets one JSON summary.
    """
    json_mode = _narrate_to(out)
    region = region or REGION
    try:
        from moto import mock_aws
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise CertRotateError("the demo needs moto: pip install 'certrotate[demo]'") from None
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        base = (
            Path(workdir)
            if workdir
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="certrotate-demo-")))
        )
        base.mkdir(parents=True, exist_ok=True)
        moto_port = _moto(stack, region, mock_aws, ThreadedMotoServer)
        import boto3

        import rotation.handler
        from rotation.emulation.pki import create_ca

        rotation.handler.reset()
        stack.callback(rotation.handler.reset)
        sm = boto3.client("secretsmanager", region_name=region)
        pca = boto3.client("acm-pca", region_name=region)
        _step("Private CA hierarchy in moto: a root CA and an issuing CA")
        root = create_ca(pca, name="certrotate Demo Root CA")
        issuing = create_ca(pca, parent=root, name="certrotate Demo Issuing CA")
        ca_pem = pca.get_certificate_authority_certificate(CertificateAuthorityArn=issuing)["Certificate"]
        demo_secrets = []
        for label, spec in _secrets(issuing):
            arn = sm.create_secret(Name=f"certrotate-demo/{spec['COMMON_NAME']}", SecretString=json.dumps(spec))["ARN"]
            demo_secrets.append(DemoSecret(label, spec["CERTIFICATE_TYPE"], arn, spec["COMMON_NAME"]))
            _step(f"secret {spec['COMMON_NAME']}: {label}, {spec['CERTIFICATE_TYPE']}")
        hostnames = [s.hostname for s in demo_secrets]
        target = open_target(
            stack, base, hostnames, f"http://127.0.0.1:{moto_port}", use_apache=use_apache, name=server, console=console
        )
        _rotate_and_serve(sm, demo_secrets, target, ca_pem, rotate_now=False, region=region)
        previous = {s.arn: s.served_serial for s in demo_secrets}
        _step("rotate now: a fresh certificate for each secret, whatever its renewal policy")
        _rotate_and_serve(sm, demo_secrets, target, ca_pem, rotate_now=True, region=region)
        changed = all(previous[s.arn] != s.served_serial for s in demo_secrets)
        _table(demo_secrets, previous, target.label)
    elapsed = time.monotonic() - started
    if json_mode:
        _summary(demo_secrets, previous, target.label, region, elapsed, changed)
    if not changed:
        console.print("[red]the served certificate did not change after rotate-now[/red]", soft_wrap=True)
        return 1
    console.print(
        f"[green]demo complete in {elapsed:.1f} s: rotated, installed, served and re-rotated; "
        "nothing left running[/green]",
        soft_wrap=True,  # a sentence is one line in a pipe too; the terminal wraps it
    )
    return 0


def _moto(stack: contextlib.ExitStack, region: str, mock_aws: Any, server_class: Any) -> int:
    """moto in process and its server on a free loopback port, with the emulation the demo needs;
    returns the port."""
    from rotation.emulation.pki import cached_moto_ca_keys, real_acm_chain

    stack.enter_context(_offline_aws(region))
    stack.enter_context(mock_aws())
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = _quick_stop(server_class)(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stack.callback(server.stop)
    stack.enter_context(cached_moto_ca_keys())  # moto's CA re-loads its key at every use (0.9 s of the demo)
    stack.enter_context(real_acm_chain())
    stack.enter_context(_issuance_ledger(region))
    return port


#: How often moto's server loop looks whether it was told to stop (werkzeug's default: 0.5 s).
STOP_POLL_SECONDS = 0.05


def _quick_stop(server_class: Any) -> Any:
    """moto's ``ThreadedMotoServer`` whose ``stop`` returns within :data:`STOP_POLL_SECONDS`.

    ``stop`` asks the serving loop to end and joins its thread; the loop looks between two waits
    for a request of ``poll_interval`` seconds (``socketserver.BaseServer.serve_forever``), which
    werkzeug's server leaves at 0.5 s: up to half a second of the demo's end spent idle.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    class QuickStop(server_class):  # type: ignore[misc]
        def _server_entry(self) -> None:
            self._server = make_server(
                self._ip_address, self._port, DomainDispatcherApplication(create_backend_app), True
            )
            self._server_ready_event.set()
            self._server.serve_forever(poll_interval=STOP_POLL_SECONDS)

    return QuickStop


def _issuance_ledger(region: str) -> Any:
    """The ledger the central stack creates (ACM_ISSUED needs it), in the demo's moto."""
    from rotation.emulation.rotation_service import issuance_ledger

    return issuance_ledger(region)


def _narrate_to(out: Any) -> bool:
    """Narration on stdout, or on stderr when stdout is for ``--output json``; returns JSON mode."""
    global console
    json_mode = bool(out is not None and out.json_mode)
    no_color = bool(out is not None and out.stdout.no_color)
    console = Console(highlight=False, emoji=False, stderr=json_mode, no_color=no_color)
    return json_mode


def _step(text: str) -> None:
    console.print(f"[bold cyan]>[/bold cyan] {text}", soft_wrap=True)


def _rotate_and_serve(
    sm: Any, secrets: list[DemoSecret], target: Target, ca_pem: str, *, rotate_now: bool, region: str
) -> None:
    """Rotate each secret (the four steps, one secret after the other) and install each certificate
    as soon as it is rotated, the installs side by side (each on its own host), then prove each
    served by a handshake that trusts only the CA."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(secrets), thread_name_prefix="certrotate-demo-install") as pool:
        installs = [pool.submit(target.deliver, secret, _rotate(sm, secret, rotate_now, region)) for secret in secrets]
        for install in installs:
            install.result()
    for secret in secrets:
        bundle = secret.bundle
        assert bundle is not None
        seen = served_certificate("127.0.0.1", target.port(secret.hostname), secret.hostname, ca_pem)
        secret.served_serial = format(seen.serial_number, "X")
        if secret.served_serial != bundle.serial_hex:
            raise CertRotateError(
                f"{secret.hostname}: served serial {secret.served_serial} is not the rotated {bundle.serial_hex}"
            )
        _step(
            f"{secret.hostname}: serial {bundle.serial_hex[:8]} rotated, installed on {target.label}, "
            "verified by a TLS handshake"
        )


def _rotate(sm: Any, secret: DemoSecret, rotate_now: bool, region: str) -> CertBundle:
    """One rotation through the real handler, driven as Secrets Manager drives it; the new bundle."""
    from rotation.emulation.rotation_service import run_steps, stage_pending

    token = stage_pending(secret.arn, region=region)
    if rotate_now:
        sm.tag_resource(SecretId=secret.arn, Tags=[{"Key": ROTATE_NOW_TAG, "Value": token}])
    with contextlib.redirect_stdout(io.StringIO()):  # the Lambda's EMF metric lines
        run_steps(secret.arn, token)
    fields = json.loads(sm.get_secret_value(SecretId=secret.arn, VersionStage="AWSCURRENT")["SecretString"])
    bundle = CertBundle.from_fields(fields)
    assert bundle is not None
    secret.bundle = bundle
    return bundle


def _summary(
    demo_secrets: list[DemoSecret], previous: dict[str, str], served_by: str, region: str, elapsed: float, changed: bool
) -> None:
    """``--output json``: one document on stdout."""
    rows = []
    for secret in demo_secrets:
        bundle = secret.bundle
        assert bundle is not None
        rows.append(
            {
                "secret": secret.hostname,
                "type": secret.certificate_type,
                "key": bundle.key_algorithm_label,
                "serial_before_rotate_now": previous[secret.arn],
                "serial": bundle.serial_hex,
                "not_after": bundle.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "served": secret.served_serial == bundle.serial_hex,
            }
        )
    document = {"served_by": served_by, "region": region, "elapsed_seconds": round(elapsed, 1), "rotated": changed}
    sys.stdout.write(json.dumps({**document, "secrets": rows}, indent=2) + "\n")


def _table(demo_secrets: list[DemoSecret], previous: dict[str, str], served_by: str) -> None:
    table = Table(
        title=f"certrotate demo: served by {served_by}, checked by TLS handshakes trusting only the CA",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("secret", "type", "key", "serial → new", "not after", "served"):
        table.add_column(column, no_wrap=True)
    for secret in demo_secrets:
        bundle = secret.bundle
        assert bundle is not None
        served = secret.served_serial == bundle.serial_hex
        table.add_row(
            secret.hostname,
            secret.certificate_type.removesuffix("_ISSUED"),
            bundle.key_algorithm_label,
            f"{previous[secret.arn][:8]} → {bundle.serial_hex[:8]}",
            bundle.not_after.strftime("%Y-%m-%d"),
            "[green]yes[/green]" if served else "[red]no[/red]",
        )
    console.print(table)

"""``certrotate sandbox``: a local AWS account to try every command in, with no AWS account.

moto's server on a loopback port, completed by certrotate's emulation: RotateSecret runs the real
rotation function (``rotation.emulation.rotation_service``, its log lines in moto's CloudWatch
Logs), moto's ACM exports chains that verify (``pki.real_acm_chain``), SSM keeps an inventory
(``ssm_inventory``), SendCommand reaches no instance, as SSM with no managed node
(``ssm_commands``), and State Manager associations are created, listed, started and run on the
wall clock (``association_api``; with no managed node registered, a run has no target yet). In it:
a Private CA, the rotation function with Secrets Manager's invoke permission, the two SSM
documents, a KMS key whose policy admits a workload role, optionally the issuance ledger table;
the rotation function reads its issuance policy from :data:`POLICY_PARAMETER`. The CA publishes its
CRL to the bucket :data:`CRL_BUCKET` (``rotation.emulation.pca_crl``) on Private CA's cadence
compressed: :data:`CRL_DELAY_SECONDS` (seconds where AWS takes about 30 and 15 minutes). It prints the
``export`` lines that point a shell at it (``eval`` them), then serves until Ctrl-C or SIGTERM;
``--detach`` serves in the background and adds ``CERTROTATE_SANDBOX_PID`` to the lines, so
``kill "$CERTROTATE_SANDBOX_PID"`` stops it. ``--hosts N`` adds N managed nodes, real local servers
that SendCommand and associations run the installer on, and what a CA rollover needs
(``rotation.cli.sandbox_hosts``); the rotation function then reads its policy at every step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rotation.cli.output import Output
from rotation.errors import CertRotateError

FUNCTION = "certrotate-rotation"
WORKLOAD_ROLE = "arn:aws:iam::444455556666:role/certrotate-workload-instance"
LEDGER_TABLE = "certrotate-issuance-ledger"
#: The SSM parameter the sandbox's rotation function reads its issuance policy from (absent: the default).
POLICY_PARAMETER = "/certrotate-sandbox/issuance-policy"
READY = "# certrotate sandbox ready"
#: moto accepts any credentials; these keep every call away from a real account's.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}
DETACH_TIMEOUT = 120.0
#: The bucket the sandbox CA writes its CRL to (its policy lets acm-pca.amazonaws.com write, as AWS requires).
CRL_BUCKET = "certrotate-sandbox-crl"
#: Seconds from a revocation to the CRL that lists it, and between retries of a failed write
#: (Private CA: about 30 minutes, then every 15): ``revoke --compromised`` finishes in the sandbox.
CRL_DELAY_SECONDS, CRL_RETRY_SECONDS = 5.0, 5.0


class SandboxError(CertRotateError):
    """The sandbox could not start (moto missing, the background process failed)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="moto's port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--ledger", action="store_true", help="also the issuance ledger table (CERTROTATE_LEDGER_TABLE)"
    )
    parser.add_argument(
        "--workload-role-arn",
        default=WORKLOAD_ROLE,
        metavar="ARN",
        help=f"the role the KMS key policy admits for kms:Decrypt ({WORKLOAD_ROLE})",
    )
    parser.add_argument(
        "--detach", action="store_true", help="serve in the background; the lines include CERTROTATE_SANDBOX_PID"
    )
    parser.add_argument(
        "--hosts",
        type=_host_count,
        default=0,
        metavar="N",
        help="also N managed nodes (local Apache, nginx or HAProxy) and a second CA and trust bundle for a CA rollover",
    )


def _host_count(value: str) -> int:
    from rotation.cli.sandbox_hosts import MOST_HOSTS

    if not value.isdigit() or not 1 <= int(value) <= MOST_HOSTS:
        raise argparse.ArgumentTypeError(f"--hosts {value!r}: a whole number of nodes from 1 to {MOST_HOSTS}")
    return int(value)


def run(args: argparse.Namespace, out: Output) -> int:
    region = args.region or "us-east-1"
    if args.detach:
        return _detach(args, region, out)
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise SandboxError("the sandbox needs moto's server: pip install -e '.[demo]'") from None
    from rotation.cli.local_apache import free_port

    port = args.port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    # A flag, not a threading.Event: Event.set() from a signal handler can deadlock on the lock the
    # interrupted Event.wait() holds (seen: a SIGTERM that never stopped the sandbox).
    stop: list[int] = []
    interrupted = False
    try:  # Ctrl-C at any moment: everything started is stopped (the stack), then the one line and 130
        with _sandbox_environment(region, f"http://127.0.0.1:{port}"), contextlib.ExitStack() as stack:
            import logging

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            server.start()
            stack.callback(server.stop)
            failures, state_manager = stack.enter_context(_emulation(managed_nodes=bool(args.hosts)))
            exports = provision(
                f"http://127.0.0.1:{port}", region, ledger=args.ledger, workload_role=args.workload_role_arn
            )
            from rotation.issuance.policy_store import POLICY_PARAMETER_ENV

            os.environ[POLICY_PARAMETER_ENV] = POLICY_PARAMETER  # the rotation function reads the policy there
            if args.ledger:
                os.environ["CERTROTATE_LEDGER_TABLE"] = LEDGER_TABLE  # the rotation function records issuances
            if args.hosts:
                endpoint = f"http://127.0.0.1:{port}"
                exports.update(_start_hosts(stack, args.hosts, endpoint, region, exports["CA_ARN"], state_manager))
            # Before the ready line: whoever reads it may stop the sandbox at once, and a SIGTERM must
            # then stop it as any other (its log removed), not end it by the signal's default action.
            previous = signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
            stack.callback(signal.signal, signal.SIGTERM, previous)
            try:
                sys.stdout.write("".join(f"{line}\n" for line in export_lines(exports)) + f"{READY}\n")
                sys.stdout.flush()
            except BrokenPipeError:  # --detach's launcher was interrupted: nobody knows this sandbox, stop it
                stop.append(signal.SIGPIPE)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stdout was the lines; the function's logs go to stderr
            out.note(f"certrotate sandbox on http://127.0.0.1:{port} (region {region}); Ctrl-C or SIGTERM stops it")
            reported = 0
            while not stop:
                time.sleep(0.5)
                state_manager.run_due_associations()  # what State Manager runs, on the wall clock here
                for failure in failures[reported:]:  # what Lambda would log for a failed step
                    out.note(f"certrotate sandbox: a rotation failed: {type(failure).__name__}: {failure}")
                reported = len(failures)
    except KeyboardInterrupt:
        interrupted = True
    out.note("certrotate sandbox stopped")
    _remove_own_log()
    if interrupted:  # Ctrl-C: the one line and exit 130, as for every command (SIGTERM is a requested stop: 0)
        raise KeyboardInterrupt
    return 0


#: Set by ``--detach`` for the background sandbox: the log it writes, removed when it stops cleanly.
LOG_ENV = "CERTROTATE_SANDBOX_LOG"


def _remove_own_log() -> None:
    log = os.environ.get(LOG_ENV)
    if log:
        with contextlib.suppress(OSError):
            Path(log).unlink()


def export_lines(values: dict[str, str]) -> list[str]:
    """``export NAME=VALUE`` lines, values shell-quoted, after unsetting what would point elsewhere."""
    return ["unset AWS_PROFILE AWS_SESSION_TOKEN"] + [f"export {k}={shlex.quote(v)}" for k, v in values.items()]


@contextlib.contextmanager
def _sandbox_environment(region: str, endpoint: str) -> Iterator[None]:
    """This process's AWS settings: the rotation function's clients call the sandbox, never AWS."""
    saved = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(name, None)
    os.environ.update(CREDENTIALS, AWS_DEFAULT_REGION=region, AWS_ENDPOINT_URL=endpoint, POWERTOOLS_LOG_LEVEL="WARNING")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _start_hosts(
    stack: contextlib.ExitStack, count: int, endpoint: str, region: str, ca_arn: str, state_manager: Any
) -> dict[str, str]:
    """The nodes and the rollover's parts; the rotation function reads the policy at every step, so
    ``ca-rollover --policy-ttl 0`` holds (Lambda keeps it 5 minutes per container)."""
    import rotation.handler
    from rotation.cli.sandbox_hosts import sandbox_hosts
    from rotation.lifecycle.engine import default_services

    hosts = stack.enter_context(sandbox_hosts(count, endpoint, region, ca_arn, state_manager))
    rotation.handler._services = default_services(policy_ttl=0.0)  # the container's services, built here
    return hosts.exports()


@contextlib.contextmanager
def _emulation(*, managed_nodes: bool = False) -> Iterator[tuple[list[BaseException], Any]]:
    from datetime import timedelta

    import rotation.handler
    from rotation.emulation.association_api import state_manager_in_moto
    from rotation.emulation.dynamodb_tables import strict_table_deletion
    from rotation.emulation.managed_hosts import ManagedHosts
    from rotation.emulation.pca_crl import CrlSchedule, crl_publisher
    from rotation.emulation.pca_issuance import teach_moto_private_ca_issuance
    from rotation.emulation.pki import cached_moto_ca_keys, real_acm_chain
    from rotation.emulation.rotation_service import rotation_function_in_moto
    from rotation.emulation.ssm_commands import ssm_commands_in_moto
    from rotation.emulation.ssm_inventory import ssm_inventory_in_moto

    rotation.handler.reset()
    teach_moto_private_ca_issuance()
    hosts = ManagedHosts() if managed_nodes else None
    schedule = CrlSchedule(timedelta(seconds=CRL_DELAY_SECONDS), timedelta(seconds=CRL_RETRY_SECONDS))
    with (
        cached_moto_ca_keys(),  # moto's CA re-loads its key at every use: emulator cost, not the CA's
        real_acm_chain(),
        rotation_function_in_moto() as failures,
        ssm_inventory_in_moto(),
        ssm_commands_in_moto(hosts),
        strict_table_deletion(),
        state_manager_in_moto(hosts) as state_manager,
        crl_publisher(schedule),
    ):
        yield failures, state_manager
    rotation.handler.reset()


def provision(endpoint: str, region: str, *, ledger: bool, workload_role: str) -> dict[str, str]:
    """The central account's parts in moto; returns the variables that point a shell at them."""
    import boto3

    from rotation.build.ssm_documents import DOCUMENTS, document_path
    from rotation.emulation.pki import create_ca
    from rotation.emulation.rotation_service import LAMBDA_ARN
    from rotation.issuance.policy_store import POLICY_PARAMETER_ENV

    session: Any = boto3.Session(region_name=region)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)

    role = client("iam").create_role(RoleName="certrotate-rotation", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    function_arn = LAMBDA_ARN.replace("us-east-1", region)
    lam = client("lambda")
    lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="rotation.handler.lambda_handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},  # moto runs no code: RotateSecret runs the handler here
    )
    lam.add_permission(
        FunctionName=FUNCTION,
        StatementId="secretsmanager",
        Action="lambda:InvokeFunction",
        Principal="secretsmanager.amazonaws.com",
    )
    ssm = client("ssm")
    for document in DOCUMENTS:
        ssm.create_document(
            Name=document.name,
            Content=document_path(document).read_text(),
            DocumentType="Command",
            DocumentFormat="YAML",
        )
    statement = {"Effect": "Allow", "Principal": {"AWS": workload_role}, "Action": "kms:Decrypt", "Resource": "*"}
    key = client("kms").create_key(Policy=json.dumps({"Statement": [statement]}))["KeyMetadata"]["Arn"]
    from rotation.fleet.crl_facts import write_policy_statement

    s3 = client("s3")
    s3.create_bucket(
        Bucket=CRL_BUCKET,
        **({} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}),
    )
    statement = write_policy_statement(CRL_BUCKET, "*")
    statement["Condition"] = {"StringEquals": {"aws:SourceAccount": client("sts").get_caller_identity()["Account"]}}
    s3.put_bucket_policy(Bucket=CRL_BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    crl = {"Enabled": True, "S3BucketName": CRL_BUCKET, "ExpirationInDays": 7}
    ca = create_ca(client("acm-pca"), name="certrotate Sandbox Root CA", revocation={"CrlConfiguration": crl})
    exports = {
        "AWS_ENDPOINT_URL": endpoint,
        **CREDENTIALS,
        "AWS_DEFAULT_REGION": region,
        "CA_ARN": ca,
        "KMS_KEY_ID": key,
        "ROTATION_LAMBDA_ARN": function_arn,
        # Store a policy there (aws ssm put-parameter) to try one: the emulated Private CA issues what
        # VALIDITY asks, backdated as AWS's, so a 90-day rule rotates here as it does in AWS.
        POLICY_PARAMETER_ENV: POLICY_PARAMETER,
    }
    if ledger:
        from rotation.fleet.ledger import create_table

        create_table(client("dynamodb"), LEDGER_TABLE)
        exports["CERTROTATE_LEDGER_TABLE"] = LEDGER_TABLE
    return exports


def _unblock_sigint() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _detach(args: argparse.Namespace, region: str, out: Output) -> int:
    """Start the sandbox as its own process (own session: a Ctrl-C in this shell leaves it running)."""
    log = Path(tempfile.mkstemp(prefix="certrotate-sandbox-", suffix=".log")[1])
    command = [sys.executable, "-m", "rotation.cli", "sandbox", "--region", region, "--no-color"]
    command += ["--port", str(args.port)] if args.port else []
    command += ["--ledger"] if args.ledger else []
    command += ["--hosts", str(args.hosts)] if args.hosts else []
    command += ["--workload-role-arn", args.workload_role_arn]
    # SIGINT waits while the child starts: a Ctrl-C then is handled below, where the child is known
    # (inside Popen it would leave a sandbox running that nobody knows of). The child unblocks it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with log.open("w") as log_file:
            child = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                start_new_session=True,
                env={**os.environ, LOG_ENV: str(log)},
                preexec_fn=_unblock_sigint,  # noqa: PLW1509 - no other thread runs in this process yet
            )
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        raise
    lines: list[str] = []
    assert child.stdout is not None
    timer = threading.Timer(DETACH_TIMEOUT, child.kill)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a Ctrl-C that waited lands here
        timer.start()
        for line in child.stdout:
            if line.rstrip("\n") == READY:
                break
            lines.append(line.rstrip("\n"))
    except KeyboardInterrupt:  # the sandbox is in its own session: it would run on, unknown to anyone
        child.kill()
        child.wait()
        log.unlink(missing_ok=True)
        raise
    finally:
        timer.cancel()
        child.stdout.close()
    if not lines or child.poll() is not None:
        child.kill()
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        raise SandboxError(f"the sandbox did not start ({tail[0]}); its log: {log}")
    for line in [*lines, f"export CERTROTATE_SANDBOX_PID={child.pid}"]:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    out.note(f'certrotate sandbox running (pid {child.pid}, log {log}); stop it: kill "$CERTROTATE_SANDBOX_PID"')
    return 0

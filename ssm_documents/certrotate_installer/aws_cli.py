"""The aws CLI: the secret's value, and any other call (PutInventory), stderr's last line on failure."""

import json
import subprocess
from typing import Any, Dict, List

from .output import Exit, InstallError
from .parameters import Request
from .tools import find_tool

AWS_TIMEOUT_SECONDS = 120


def run_aws(arguments: List[str], env: Dict[str, str], code: Exit, what: str) -> bytes:
    """The stdout of ``aws ARGUMENTS``.

    Raises:
        InstallError: ``code`` with ``what`` and stderr's last line (never stdout), HOST_UNSUPPORTED.
    """
    try:
        done = subprocess.run(
            [find_tool("aws", env), *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            timeout=AWS_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InstallError(code, what + ": the aws CLI timed out") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        raise InstallError(code, "{}: {}".format(what, lines[-1] if lines else f"aws exit {done.returncode}"))
    return done.stdout


def fetch_secret(request: Request, env: Dict[str, str]) -> Dict[str, Any]:
    """The secret's JSON fields, read with the aws CLI in the secret's own region.

    Raises:
        InstallError: SECRET_UNREADABLE (stderr's last line, never stdout), HOST_UNSUPPORTED.
    """
    where = f"secret {request.secret_arn} ({request.version_stage})"
    arguments = ["secretsmanager", "get-secret-value", "--secret-id", request.secret_arn]
    arguments += ["--version-stage", request.version_stage, "--region", request.secret_arn.split(":")[3]]
    stdout = run_aws([*arguments, "--output", "json"], env, Exit.SECRET_UNREADABLE, "cannot read " + where)
    try:
        fields = json.loads(json.loads(stdout.decode("utf-8"))["SecretString"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise InstallError(Exit.SECRET_UNREADABLE, f"{where}: the secret value is not a JSON object") from None
    if not isinstance(fields, dict):
        raise InstallError(Exit.SECRET_UNREADABLE, f"{where}: the secret value is not a JSON object")
    for field in ("CERTIFICATE_PEM", "PRIVATE_KEY_PEM", "CERTIFICATE_CHAIN_PEM"):
        if not isinstance(fields.get(field), str) or "-----BEGIN" not in fields[field]:
            raise InstallError(Exit.SECRET_UNREADABLE, f"{where}: the secret has no {field}")
    return fields

"""Running the installed ``certrotate`` console script as a user runs it: a subprocess.

The script is the one installed with the interpreter running the tests (next to it in a venv, else
in its scripts directory), never whatever ``certrotate`` comes first on PATH.

Served warm: :func:`run` (and :func:`certrotate`) start the script through tests/support/warm.py's
launcher, a forked child of a server that already imported what the script imports at start
(boto3, botocore, cryptography, rich, rotation.cli's command modules). The child runs the installed
script file itself, with the same argv, environment, working directory, umask, process group, stdio
fds and signal dispositions a new interpreter would have; it exits as the interpreter would, and
the launcher with its status (a signal death is -N; a timeout kills the launcher, and the server
the child). Only the interpreter's start and those imports are shared, so what a test proves about
a command is unchanged: same code, same arguments, same environment. rotation.console (the Ctrl-C
handler from its first line) is imported by each run itself, never by the server. What differs is
the process: its parent is the server, its /proc cmdline the server's (the launcher's is the
command's), its string hash seed the server's. The integration tests' aws CLI is served the same
way (tests/integration/conftest.py ``host_env``); tests/unit/test_warm_fork_server.py compares
served runs with real ones.

Always a real exec (``real_exec=True``, or :func:`script` with Popen): what is about the start
itself (Ctrl-C at start-up moments, ``PYTHONVERBOSE``/``PYTHONFAULTHANDLER`` runs, the check that the
installed script starts in tests/unit/test_warm_fork_server.py), ``completion``, and any run whose
environment carries other ``PYTHON*`` variables than :func:`cli_env` sets (they change the start).
:func:`shell_env` serves shell scripts that run ``certrotate`` by name (the README's walkthroughs).
Without gcc, or with ``CERTROTATE_TESTS_REAL_EXEC`` set, every run is a real exec.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import warm

REGION = "us-east-1"
SCRIPT = next(
    (
        path
        for path in (Path(sys.executable).with_name("certrotate"), Path(sysconfig.get_path("scripts")) / "certrotate")
        if path.is_file()
    ),
    Path(sys.executable).with_name("certrotate"),
)
KEY_MARKERS = ("PRIVATE KEY", "BEGIN EC PARAMETERS")


def script() -> list[str]:
    assert SCRIPT.is_file(), f"the console script is not installed next to {sys.executable}"
    return [str(SCRIPT)]


def cli_env(**extra: str) -> dict[str, str]:
    """A clean environment: test credentials, no profile or endpoint from the caller's shell.

    ``CERTROTATE_LEDGER_TABLE`` is dropped too: the emulated rotation function runs in the test's
    process and reads it from there, but an operator's shell sets it only by choice (with it,
    ``status`` and ``hosts`` read the ledger instead of values); a test passes it in ``extra``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "CERTROTATE_LEDGER_TABLE"}
    if env.pop("PYTHONDONTWRITEBYTECODE", None):  # what each run imports is compiled once (tests/conftest.py)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), f"certrotate-tests-pycache-{os.getuid()}")
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def _python_variables(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("PYTHON")}


def run(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input_text: str | None = None,
    real_exec: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``certrotate ARGS``; asserts what every run must satisfy: no key material, no traceback.

    Served warm unless ``real_exec`` (a new interpreter), or ``env`` changes the interpreter's start.
    """
    env = env or cli_env()
    command = [*script(), *args]
    if not real_exec and _python_variables(env) == _python_variables(cli_env()):
        command, env = warm.command("certrotate", list(args), env) or (command, env)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=input_text,
        check=False,
    )
    for marker in KEY_MARKERS:
        assert marker not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def shell_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default :func:`cli_env`) for a shell script that runs ``certrotate`` by name: the console
    script's directory first on PATH, and before it the launcher's (``certrotate`` served warm) when
    there is one and ``env`` starts the interpreter as :func:`cli_env` does."""
    env = dict(env or cli_env())
    env["PATH"] = f"{SCRIPT.parent}:{env['PATH']}"
    launchers = warm.launchers()
    if launchers is not None and _python_variables(env) == _python_variables(cli_env()):
        served = warm.socket_for("certrotate", env)
        if served is not None:
            env.update({"PATH": f"{launchers / 'bin'}:{env['PATH']}", warm.SOCKET_VARIABLE: served})
    return env


def communicate_or_dump(process: subprocess.Popen[str], what: str, timeout: float = 30) -> tuple[str, str]:
    """``process.communicate`` within ``timeout``; past it, the process (started with
    ``PYTHONFAULTHANDLER=1``) gets SIGABRT, so the failure shows where each of its threads was stuck."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        raise AssertionError(
            f"certrotate still running {timeout:.0f} s after {what} (exit {process.returncode} after SIGABRT);"
            f"\nstdout:\n{stdout}\nstderr (faulthandler's stack of every thread):\n{stderr}"
        ) from None


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("certrotate: error: "), result.stderr
    return lines[0]


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The error lines among stderr's messages and progress lines."""
    return [line for line in result.stderr.splitlines() if line.startswith("certrotate: error: ")]


def the_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed run (progress and messages may precede it)."""
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr
    return errors[0]


LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:certrotate-rotation"


def certrotate(*args: str, endpoint: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``certrotate ARGS --endpoint-url ENDPOINT`` (the endpoint option after the command, as users type it)."""
    extra = ["--endpoint-url", endpoint] if endpoint else []
    return run(*args, *extra, timeout=timeout)


def client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def make_secret(endpoint: str, name: str, fields: dict[str, Any] | str, **extra: Any) -> str:
    value = fields if isinstance(fields, str) else json.dumps(fields)
    sm = client(endpoint, "secretsmanager")
    return str(sm.create_secret(Name=name, SecretString=value, **extra)["ARN"])


def pca_fields(ca: str, **extra: str) -> dict[str, str]:
    return {
        "CERTIFICATE_TYPE": "PCA_ISSUED",
        "CA_ARN": ca,
        "COMMON_NAME": "app.example.internal",
        "KEY_ALGORITHM": "EC_prime256v1",
        **extra,
    }


def enable_rotation(endpoint: str, arn: str) -> None:
    """Rotation on with the rotation function, as the console does (its first rotation runs at once)."""
    client(endpoint, "secretsmanager").rotate_secret(SecretId=arn, RotationLambdaARN=LAMBDA)


def rotation_settled(endpoint: str, arn: str, polls: int = 600) -> None:
    """Wait until no rotation of ``arn`` is under way: AWSPENDING, if any, is on the AWSCURRENT version.
    A rotation runs in moto's thread after RotateSecret (or create-secret's first) has answered, as
    Secrets Manager invokes the function after answering; on a loaded machine it takes a while."""
    sm = client(endpoint, "secretsmanager")
    for _ in range(polls):
        stages = sm.describe_secret(SecretId=arn).get("VersionIdsToStages", {}).values()
        if not any("AWSPENDING" in s and "AWSCURRENT" not in s for s in stages):
            return
        time.sleep(0.1)
    raise AssertionError(f"a rotation of {arn} is still under way after {polls} polls")


def rotated(endpoint: str, name: str, ca: str, **extra: str) -> str:
    """A certificate secret with rotation on and its first certificate issued."""
    arn = make_secret(endpoint, name, pca_fields(ca, **extra))
    enable_rotation(endpoint, arn)
    sm = client(endpoint, "secretsmanager")
    for _ in range(100):
        value = json.loads(sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
        if "CERTIFICATE_SERIAL" in value:
            return arn
        time.sleep(0.1)
    raise AssertionError("the first rotation did not finish")

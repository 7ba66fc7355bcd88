"""The tests' fork server (tests/support/zygote.py) and launcher: a served run is what a real exec would be."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import cli, warm

PROBE = [sys.executable, str(warm.PROBE)]


@pytest.fixture(autouse=True)
def launcher() -> None:
    if warm.launchers() is None:
        if os.environ.get("CI"):
            pytest.fail("required in CI: gcc, to build tests/support/warm_launcher.c")
        pytest.skip("no launcher (gcc absent or the build failed): every run is a real exec")


def served(argv: list[str], env: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    found = warm.command("warm-probe", argv, env or cli.cli_env())
    assert found is not None
    return found


def facts(command: list[str], env: dict[str, str], **options: object) -> dict[str, object]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)  # type: ignore[call-overload]
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    found: dict[str, object] = json.loads(stdout)
    found["exec"] = found.pop("pid") == process.pid  # the probe is the process started (a real exec)
    return found


def test_a_served_run_starts_in_the_state_a_real_exec_starts_in(tmp_path: Path) -> None:
    """argv, cwd, umask, environment, signal dispositions and mask, open fds, stdio encodings and
    buffering, sys.path[0], sys.flags, process group: equal; only the process is another."""
    env = cli.cli_env(WARM_PROBE_MARK="é and spaces")
    real = facts([*PROBE, "facts", "two words"], env, cwd=tmp_path)
    command, served_env = served(["facts", "two words"], env)
    warm_run = facts(command, served_env, cwd=tmp_path)
    assert real.pop("exec") is True and warm_run.pop("exec") is False
    assert warm_run == real
    assert real["cwd"] == str(tmp_path) and real["env"]["WARM_PROBE_MARK"] == "é and spaces"  # type: ignore[index]
    assert warm.SOCKET_VARIABLE not in real["env"]  # type: ignore[operator]


def test_ignored_and_blocked_signals_are_the_callers_as_across_exec() -> None:
    """A caller's ignored SIGINT (a background job) and blocked SIGUSR1 reach the served run as they
    reach a new interpreter; the server's own dispositions do not."""

    def start() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])

    env = cli.cli_env()
    real = facts([*PROBE, "facts"], env, preexec_fn=start)
    warm_run = facts(*served(["facts"], env), preexec_fn=start)
    assert real["signals"]["SIGINT"] == "1" and real["blocked"] == [int(signal.SIGUSR1)]  # type: ignore[index]
    assert (warm_run["signals"], warm_run["blocked"]) == (real["signals"], real["blocked"])
    assert warm_run["exec"] is False


@pytest.mark.parametrize(
    ("argv", "code", "stderr"),
    [
        (["exit", "3"], 3, ""),
        (["exit", "300"], 300 & 0xFF, ""),
        (["exit-text", "a message"], 1, "a message\n"),
        (["signal", str(int(signal.SIGTERM))], -signal.SIGTERM, ""),
        (["signal", str(int(signal.SIGSEGV))], -signal.SIGSEGV, ""),
        (["interrupt"], -signal.SIGINT, "KeyboardInterrupt"),
        (["raise"], 1, "RuntimeError: the probe failed on purpose"),
    ],
)
def test_exit_codes_and_signal_deaths_are_the_real_ones(argv: list[str], code: int, stderr: str) -> None:
    real = subprocess.run([*PROBE, *argv], env=cli.cli_env(), capture_output=True, text=True, timeout=60, check=False)
    command, env = served(argv)
    warm_run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert real.returncode == warm_run.returncode == code
    assert stderr in real.stderr and stderr in warm_run.stderr
    if argv == ["raise"]:  # the traceback starts at the script, as a fresh start's does
        assert warm_run.stderr == real.stderr


def test_stdin_stdout_and_stderr_are_the_callers() -> None:
    command, env = served(["echo"])
    result = subprocess.run(command, env=env, input="abc\n", capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ABC\n", "read 4\n")


def test_atexit_callbacks_run_after_the_script() -> None:
    command, env = served(["atexit"])
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout == "main done\natexit ran\n"


def test_a_timeout_kills_the_served_child_and_the_server_lives_on() -> None:
    command, env = served(["sleep", "120"])
    with pytest.raises(subprocess.TimeoutExpired) as timed_out:
        subprocess.run(command, env=env, capture_output=True, text=True, timeout=5, check=False)
    output = timed_out.value.stdout or b""
    child = int((output.decode() if isinstance(output, bytes) else output).split()[0])
    for _ in range(300):  # the server sees the launcher's end and kills and reaps the child
        if not Path(f"/proc/{child}").exists():
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists()
    again = facts(*served(["facts"]))
    assert again["exec"] is False and child in warm.served("warm-probe")


def test_a_signal_sent_to_the_launcher_reaches_the_served_child() -> None:
    command, env = served(["sleep", "120"])
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    child = int(process.stdout.readline())
    assert child != process.pid
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == -signal.SIGTERM
    assert not Path(f"/proc/{child}").exists()


def test_other_start_variables_are_declined_and_run_by_a_real_exec() -> None:
    """A server cannot change what its interpreter started with: PYTHONHASHSEED here."""
    command, env = served(["facts"])
    declined = facts(command, {**env, "PYTHONHASHSEED": "7"})
    assert declined["exec"] is True and declined["env"]["PYTHONHASHSEED"] == "7"  # type: ignore[index]


def test_without_the_servers_socket_the_launcher_is_the_real_exec() -> None:
    command, env = served(["facts"])
    del env[warm.SOCKET_VARIABLE]
    assert facts(command, env)["exec"] is True
    assert facts(command, {**env, warm.SOCKET_VARIABLE: "/nonexistent/socket"})["exec"] is True


def test_the_warm_certrotate_is_the_installed_script_and_says_what_a_real_exec_says() -> None:
    warm_run = cli.run("status", "--help")
    real = cli.run("status", "--help", real_exec=True)
    assert (warm_run.returncode, warm_run.stdout, warm_run.stderr) == (real.returncode, real.stdout, real.stderr)
    assert warm.served("certrotate"), "certrotate was not served warm"
    script = os.path.realpath(cli.SCRIPT)
    assert all(program.script == script for program in warm.programs() if program.name == "certrotate")


def test_the_aws_launcher_is_one_find_tool_accepts() -> None:
    """The installer runs the first ``aws`` on PATH owned by root (or itself) and writable by no one else."""
    from certrotate_installer.tools import find_tool

    directory = warm.aws_directory()
    if directory is None:
        pytest.skip("no aws CLI installed")
    assert find_tool("aws", {"PATH": f"{directory}:/usr/bin:/bin"}) == str(directory / "aws")


def test_stop_ends_every_server_and_its_running_children() -> None:
    command, env = served(["sleep", "120"])
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    child = int(process.stdout.readline())
    servers = list(warm._servers.values())
    warm.stop()
    assert all(server.process.poll() is not None for server in servers)
    assert not any(server.directory.exists() for server in servers)
    assert not Path(f"/proc/{child}").exists()
    assert process.wait(timeout=60) == 125  # the launcher says the server went away


def test_ctrl_c_sent_to_a_served_certrotate_ends_it_as_it_ends_a_real_one() -> None:
    """The served run imports rotation.console itself (the server never does), so SIGINT while a
    command waits on an endpoint is the one line and exit 130, as for a new interpreter."""
    import socket

    outcomes = []
    before = len(warm.served("certrotate"))
    for real_exec in (True, False):
        with socket.create_server(("127.0.0.1", 0)) as endpoint:
            endpoint.settimeout(60)
            url = f"http://127.0.0.1:{endpoint.getsockname()[1]}"
            command = [*cli.script(), "status", "--endpoint-url", url, "--read-timeout", "60"]
            env = cli.cli_env()
            if not real_exec:
                command, env = warm.command("certrotate", command[1:], env) or (command, env)
            process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            connection, _ = endpoint.accept()  # the command is waiting for an answer that never comes
            process.send_signal(signal.SIGINT)
            _stdout, stderr = cli.communicate_or_dump(process, "SIGINT")
            connection.close()
            outcomes.append((process.returncode, stderr.splitlines()[-1:]))
    assert outcomes[0] == outcomes[1] == (130, ["certrotate: interrupted"])
    assert len(warm.served("certrotate")) == before + 1


def test_the_warm_aws_cli_answers_as_the_real_one(moto_endpoint: str) -> None:
    """``aws secretsmanager get-secret-value`` through the aws launcher, in the environment the
    installer gives its tools (tests/integration/conftest.py ``host_env``): the same output."""
    directory = warm.aws_directory()
    if directory is None:
        pytest.skip("no aws CLI installed")
    name = f"warm/{os.getpid()}-{time.monotonic_ns()}"
    cli.make_secret(moto_endpoint, name, {"CERTIFICATE_PEM": "not a real one"})
    env = {**cli.cli_env(), "AWS_ENDPOINT_URL": moto_endpoint, "LANG": "C", "LC_ALL": "C"}
    argv = ["secretsmanager", "get-secret-value", "--secret-id", name, "--region", cli.REGION, "--output", "json"]
    real = subprocess.run([str(directory / "aws"), *argv], env=env, capture_output=True, timeout=60, check=False)
    before = len(warm.served("aws"))
    socket_path = warm.socket_for("aws", env)
    assert socket_path is not None
    served_env = {**env, warm.SOCKET_VARIABLE: socket_path}
    warm_run = subprocess.run(
        [str(directory / "aws"), *argv], env=served_env, capture_output=True, timeout=60, check=False
    )
    assert (warm_run.returncode, warm_run.stdout, warm_run.stderr) == (real.returncode, real.stdout, real.stderr)
    assert real.returncode == 0 and json.loads(real.stdout)["Name"] == name
    assert len(warm.served("aws")) == before + 1


def test_a_run_with_other_python_variables_is_a_real_exec() -> None:
    """PYTHONWARNINGS (as PYTHONVERBOSE, PYTHONFAULTHANDLER) changes the interpreter's start: cli.run
    does not even ask the server."""
    before = len(warm.served("certrotate"))
    result = cli.run("status", "--help", env=cli.cli_env(PYTHONWARNINGS="ignore"))
    assert result.returncode == 0 and "usage: certrotate status" in result.stdout
    assert len(warm.served("certrotate")) == before


def test_without_gcc_there_is_no_launcher_and_runs_are_real_execs(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "gcc" else real_which(name))
    assert warm._build() is None
    monkeypatch.setattr(warm, "_built", [None])
    before = len(warm.served("certrotate"))
    assert warm.command("certrotate", ["status", "--help"], cli.cli_env()) is None
    assert "usage: certrotate status" in cli.run("status", "--help").stdout
    assert warm.with_aws({"PATH": "/usr/bin"}) == {"PATH": "/usr/bin"}
    assert len(warm.served("certrotate")) == before

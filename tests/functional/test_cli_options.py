"""The command line's contract with scripts: global options anywhere, exit codes, bounded calls.

Every test runs the installed console script in a subprocess. Endpoints that misbehave (accept
and never answer, answer an HTML 500) are tiny local servers started by the test.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotation.cli import ExitCode
from rotation.cli.local_apache import free_port
from rotation.cli.session import MAX_ATTEMPTS, AwsContext
from tests.support import cli
from tests.support.cli import certrotate, make_secret, one_error_line, pca_fields

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def silent_endpoint(accepted: list[socket.socket] | None = None) -> Iterator[str]:
    """Accepts TCP connections and never answers a byte; each connection is appended to ``accepted``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = [] if accepted is None else accepted
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        server.setblocking(False)
        with contextlib.suppress(OSError):  # connections still in the backlog count too
            while True:
                accepted.append(server.accept()[0])
        for connection in accepted:
            connection.close()
        server.close()


@contextlib.contextmanager
def html_500_endpoint() -> Iterator[str]:
    """Answers every request with a 500 and a six-line HTML page, as a broken proxy does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = (
                b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
                b"<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable"
                b" to complete your request.</p>\n</html>\n"
            )
            self.send_response(500)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- item 11 and the global option set --------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ["--endpoint-url", "{endpoint}", "--output", "json", "status"],
        ["--debug", "--endpoint-url", "{endpoint}", "status", "--output", "json"],
        ["status", "--endpoint-url", "{endpoint}", "--output", "json", "--no-color"],
        [
            "--region",
            "us-east-1",
            "--connect-timeout",
            "3",
            "status",
            "--read-timeout",
            "9",
            "--json",
            "--endpoint-url",
            "{endpoint}",
        ],
    ],
)
def test_global_options_before_or_after_the_command(endpoint: str, ca: str, arguments: list[str]) -> None:
    prefix = f"opts-{uuid.uuid4().hex[:8]}/"
    make_secret(endpoint, f"{prefix}web", pca_fields(ca))
    result = cli.run(*(a.replace("{endpoint}", endpoint) for a in arguments), "--prefix", prefix)
    assert result.returncode == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)] == [f"{prefix}web"]


def test_a_value_given_before_the_command_survives_the_commands_default(endpoint: str, ca: str) -> None:
    # The unreachable endpoint comes after the command and wins over the working one given first;
    # given only before, the working one is used: the subcommand's default does not reset it.
    unreachable = f"http://127.0.0.1:{free_port()}"
    after = cli.run("--endpoint-url", endpoint, "status", "--endpoint-url", unreachable)
    assert after.returncode == ExitCode.UNREACHABLE
    before = cli.run("--endpoint-url", endpoint, "status")
    assert before.returncode == 0, before.stderr


def test_every_command_takes_the_global_options() -> None:
    for command in ("demo", "status", "rotate", "deploy", "hosts", "validate", "create-secret", "doctor", "package"):
        text = cli.run(command, "--help").stdout
        for option in ("--region", "--profile", "--endpoint-url", "--debug", "--output", "--no-color"):
            assert option in text, (command, option)
        assert "--connect-timeout" in text and "--read-timeout" in text


# -- item 12: exit codes, one table ----------------------------------------------------------------


def readme_exit_codes() -> dict[int, str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("| exit code |") :]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section.split("\n\n")[0], re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def test_the_readme_exit_code_table_is_the_codes_the_command_returns() -> None:
    assert set(readme_exit_codes()) == {code.value for code in ExitCode}


@pytest.mark.parametrize(
    ("arguments", "code", "names"),
    [
        (["status", "--window-days", "abc"], ExitCode.USAGE, "--window-days 'abc'"),
        (["status", "--tag", "foo"], ExitCode.USAGE, "--tag 'foo'"),
        (["status", "--endpoint-url", "not a url"], ExitCode.USAGE, "--endpoint-url 'not a url'"),
        (["--endpoint-url", "http://[::1", "status"], ExitCode.USAGE, "--endpoint-url 'http://[::1'"),
        (["status", "--read-timeout", "0"], ExitCode.USAGE, "--read-timeout '0'"),
        (["deploy", "x", "--targets", "i-0123456789abcdef0", "--max-concurrency", "0"], ExitCode.USAGE, "'0'"),
        (["deploy", "x", "--targets", "i-0123456789abcdef0", "--max-errors", "-1"], ExitCode.USAGE, "'-1'"),
        (["rotate", "--filter", "team=web"], ExitCode.USAGE, "--filter 'team=web'"),
        (["rotate"], ExitCode.USAGE, "--all"),
        (["frobnicate"], ExitCode.USAGE, "unknown command 'frobnicate'"),
        (["validate", "spec.jsn", "--offline"], ExitCode.INVALID, "spec.jsn: no such file"),
        (["--profile", "no-such-profile", "status"], ExitCode.UNREACHABLE, "ProfileNotFound"),
    ],
)
def test_bad_flags_and_input_are_one_line_with_the_documented_code(
    arguments: list[str], code: ExitCode, names: str
) -> None:
    result = cli.run(*arguments)
    assert result.returncode == code, result.stderr
    assert names in one_error_line(result)
    assert result.stdout == ""


def test_an_unreachable_endpoint_is_exit_4(moto_endpoint: str) -> None:
    result = certrotate("status", endpoint=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == ExitCode.UNREACHABLE
    assert "EndpointConnectionError" in one_error_line(result)


def test_an_html_500_is_one_line_not_a_page() -> None:
    with html_500_endpoint() as url:
        result = certrotate("status", "--read-timeout", "5", endpoint=url)
    assert result.returncode == ExitCode.FAILED
    line = one_error_line(result)
    assert "500" in line and "HTML page" in line and "<" not in line


def test_ctrl_c_is_130_with_a_message() -> None:
    with silent_endpoint() as url:
        process = subprocess.Popen(
            [*cli.script(), "status", "--endpoint-url", url, "--read-timeout", "60"],
            env=cli.cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == ExitCode.INTERRUPTED
    assert stderr.strip() == "certrotate: interrupted" and stdout == ""


# -- item 8: every AWS call is bounded -----------------------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["rotate", "some/secret"], ["doctor"]])
def test_an_endpoint_that_never_answers_fails_fast_with_exit_4(command: list[str]) -> None:
    # "Fast" is the work done, not the wall clock (a loaded machine stretches every second): the
    # first call that meets the silent endpoint is tried MAX_ATTEMPTS times, each on its own
    # connection bounded by --read-timeout, and the command makes no further call.
    connections: list[socket.socket] = []
    with silent_endpoint(connections) as url:
        result = cli.run(*command, "--endpoint-url", url, "--connect-timeout", "1", "--read-timeout", "1")
    assert result.returncode == ExitCode.UNREACHABLE, result.stderr
    assert "ReadTimeoutError" in one_error_line(result)
    assert len(connections) == MAX_ATTEMPTS, len(connections)


def test_the_default_bounds_fail_a_silent_endpoint_in_under_30_seconds() -> None:
    # One call against a silent endpoint costs at most attempts * (connect + read) plus botocore's
    # standard-mode backoff (under 2 s for one retry): the defaults keep that under 30 s.
    config = AwsContext(None, "us-east-1", "http://127.0.0.1:9").client("secretsmanager").meta.config
    assert config.retries["total_max_attempts"] == MAX_ATTEMPTS
    assert MAX_ATTEMPTS * (config.connect_timeout + config.read_timeout) + 2 < 30


# -- item 1: user text is printed literally ---------------------------------------------------------


def test_user_text_is_printed_literally(endpoint: str, ca: str) -> None:
    fields = pca_fields(
        ca,
        COMMON_NAME="[/oops] [bold]x[/bold] :secret: :thumbs_up:",
        CERTIFICATE_NOT_AFTER="2099-01-01T00:00:00Z",
        CERTIFICATE_SERIAL="0A",
    )
    make_secret(endpoint, "literal/[red]name[/red]:secret:", fields)
    result = certrotate("status", "--prefix", "literal/", endpoint=endpoint)
    assert result.returncode == 0, result.stderr
    assert "[/oops] [bold]x[/bold] :secret: :thumbs_up:" in result.stdout
    assert "literal/[red]name[/red]:secret:" in result.stdout
    assert "🤫" not in result.stdout and "👍" not in result.stdout


def test_a_secret_writer_cannot_send_terminal_control_sequences(endpoint: str, ca: str) -> None:
    # The attacker writes the secret; the operator runs status in a terminal. OSC 0 would retitle
    # it, CSI 2J clear it, and a C1 CSI (0x9b) does the same on terminals that honour C1.
    hostile = "web\x1b]0;owned\x07\x1b[2J\u009b31m.example"
    make_secret(
        endpoint,
        "controls/web",
        pca_fields(ca, COMMON_NAME=hostile, CERTIFICATE_NOT_AFTER="2099-01-01T00:00:00Z"),
    )
    for args in (["status", "--prefix", "controls/"], ["status", "controls/web"]):
        result = certrotate(*args, endpoint=endpoint)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x9b" not in result.stdout and "\x07" not in result.stdout
        assert "web\\x1b]0;owned\\x07\\x1b[2J\\x9b31m.example" in result.stdout  # shown, escaped
    as_json = certrotate("status", "--prefix", "controls/", "--json", endpoint=endpoint)
    assert json.loads(as_json.stdout)[0]["subject"] == hostile and "\x1b" not in as_json.stdout


# -- shell completion ------------------------------------------------------------------------------------


def test_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    script = cli.run("completion", "bash", real_exec=True)
    assert script.returncode == 0, script.stderr
    (tmp_path / "certrotate.bash").write_text(script.stdout)
    probe = f"""
source {tmp_path / "certrotate.bash"}
complete -p certrotate
function ask() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}};
  COMPREPLY=(); "$1_complete" 2>/dev/null || $(complete -p certrotate | sed 's/.*-F \\([^ ]*\\).*/\\1/') certrotate;
  echo "${{COMPREPLY[*]}}"; }}
ask certrotate st
ask certrotate status --win
ask certrotate completion ""
"""
    shown = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    assert shown[0].startswith("complete ") and shown[0].endswith(" certrotate")
    assert shown[1].split() == ["status"]
    assert shown[2].split() == ["--window-days"]
    assert set(shown[3].split()) == {"bash", "zsh"}


def test_zsh_completion_is_generated_from_the_parser() -> None:
    script = cli.run("completion", "zsh", real_exec=True)
    assert script.returncode == 0
    assert script.stdout.startswith("#compdef certrotate")
    for word in ("create-secret", "doctor", "--window-days", "--dry-run", "--read-timeout"):
        assert word in script.stdout

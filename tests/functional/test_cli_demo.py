"""``certrotate demo`` run as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import cli, warm


def certrotate() -> list[str]:
    return cli.script()


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["COLUMNS"] = "120"
    return env


def run_demo(
    workdir: Path, *extra: str, before: tuple[str, ...] = (), columns: str = "120"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*certrotate(), *before, "demo", "--workdir", str(workdir), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=warm.with_aws({**clean_env(), "COLUMNS": columns}),  # the demo's installs run the first aws on PATH
        check=False,
    )


def assert_demo_proved_rotation(result: subprocess.CompletedProcess[str], workdir: Path, served_by: str) -> None:
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "demo complete" in out
    assert out.count(f"installed on {served_by}") == 4  # two secrets, rotated twice each
    header = next(line for line in out.splitlines() if line.split()[:1] == ["secret"])
    assert header.split()[-1] == "served"  # the table fits 80 columns: no header cut to "serv…"
    for name in ("server1.example", "server2.example"):
        row = next(line for line in out.splitlines() if line.split()[:1] == [name])
        before, after = re.findall(r"([0-9A-F]{8}) → ([0-9A-F]{8})", row)[0]
        assert before != after and "yes" in row
    assert "PRIVATE KEY" not in out + result.stderr
    keys = list(workdir.rglob("*.key")) or list(workdir.rglob("private/*.pem"))  # nginx, HAProxy: combined
    assert keys and all((k.stat().st_mode & 0o777) == 0o600 for k in keys)


def test_demo_installs_on_the_real_apache(tmp_path: Path) -> None:
    from rotation.cli.local_apache import apache_available
    from tests.integration.conftest import require

    require(apache_available())
    result = run_demo(tmp_path / "demo")
    assert_demo_proved_rotation(result, tmp_path / "demo", "Apache")
    assert "RunUpdateTLS" in result.stdout
    assert subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, check=False).returncode == 1


@pytest.mark.parametrize(("server", "label"), [("nginx", "nginx"), ("haproxy", "HAProxy")])
def test_demo_installs_on_the_real_nginx_or_haproxy(tmp_path: Path, server: str, label: str) -> None:
    from rotation.cli.local_servers import server_available
    from tests.integration.conftest import require

    require(server_available(server))
    result = run_demo(tmp_path / "demo", "--server", server)
    assert_demo_proved_rotation(result, tmp_path / "demo", label)
    assert f"local {label} (Debian {server}" in result.stdout and "RunUpdateTLS" in result.stdout
    assert subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, check=False).returncode == 1


def test_demo_without_apache_uses_the_labelled_stand_in(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", "--no-apache", columns="80")
    assert_demo_proved_rotation(result, tmp_path / "demo", "Python TLS server")
    # A pipe at 80 columns: each sentence is one line (the reader's terminal wraps), never cut mid-sentence.
    lines = result.stdout.splitlines()
    assert any(line.startswith("no local") and line.endswith("stands in") for line in lines), result.stdout
    assert any(line.startswith("demo complete in") and line.endswith("nothing left running") for line in lines)
    assert sum("verified by a TLS handshake" in line and "installed on" in line for line in lines) == 4


def test_demo_takes_the_global_region_and_json_output(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", "--no-apache", before=("--region", "eu-west-1", "--output", "json"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # the narration went to stderr
    assert summary["region"] == "eu-west-1" and summary["rotated"] is True
    assert summary["served_by"] == "Python TLS server"
    for secret in summary["secrets"]:
        assert secret["served"] and secret["serial"] != secret["serial_before_rotate_now"]
    assert "demo complete" in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = subprocess.run([*certrotate(), "frobnicate"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr


def test_the_demos_moto_server_serves_and_its_loop_looks_for_stop_every_50_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    """werkzeug's serving loop waits 0.5 s between looks at a stop request; the demo's looks every 50 ms."""
    import boto3
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import BaseWSGIServer

    from rotation.cli.demo import STOP_POLL_SECONDS, _quick_stop
    from rotation.cli.local_apache import free_port

    polls: list[float] = []
    serve = BaseWSGIServer.serve_forever

    def recorded(self: BaseWSGIServer, poll_interval: float = 0.5) -> None:
        polls.append(poll_interval)
        serve(self, poll_interval)

    monkeypatch.setattr(BaseWSGIServer, "serve_forever", recorded)
    port = free_port()
    server = _quick_stop(ThreadedMotoServer)(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        sm = boto3.client(
            "secretsmanager",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
        )
        name = f"demo-server-{port}"  # moto's backends are this process's: other tests' secrets are there too
        sm.create_secret(Name=name, SecretString="{}")
        assert sm.describe_secret(SecretId=name)["Name"] == name
    finally:
        server.stop()
    assert polls == [STOP_POLL_SECONDS] and STOP_POLL_SECONDS <= 0.05
    assert not server._thread.is_alive()

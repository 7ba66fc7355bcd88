"""``certrotate sandbox --hosts``: what it accepts, and the server its nodes run (pure parts)."""

from __future__ import annotations

import pytest

from rotation.cli import build_parser
from rotation.cli.sandbox_hosts import MOST_HOSTS, SandboxHostsError, choose_server, instance_id
from rotation.emulation.association_rules import INSTANCE_ID


@pytest.mark.parametrize("value", ["0", "11", "two", "-1", "1.5"])
def test_a_host_count_out_of_range_names_the_flag_the_value_and_the_range(
    value: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["sandbox", "--hosts", value])
    assert exited.value.code == 2
    error = capfd.readouterr().err
    assert f"--hosts {value!r}" in error and f"from 1 to {MOST_HOSTS}" in error


def test_without_the_flag_the_sandbox_has_no_hosts() -> None:
    assert build_parser().parse_args(["sandbox"]).hosts == 0
    assert build_parser().parse_args(["sandbox", "--hosts", "2"]).hosts == 2


def test_the_node_server_is_the_first_installed_of_apache_nginx_haproxy() -> None:
    assert choose_server(lambda name: None) == "apache"
    assert choose_server(lambda name: None if name != "apache" else "apache2 is not installed") == "nginx"
    assert choose_server(lambda name: None if name == "haproxy" else f"{name} is missing") == "haproxy"


def test_with_no_server_installed_the_error_names_each_and_why() -> None:
    with pytest.raises(SandboxHostsError) as refused:
        choose_server(lambda name: f"{name} is not installed (apt-get install -y {name})")
    message = str(refused.value)
    assert message.startswith("--hosts: no TLS server a node could run is installed")
    for name in ("apache", "nginx", "haproxy"):
        assert f"{name}: {name} is not installed (apt-get install -y {name})" in message


def test_node_ids_are_instance_ids_ssm_accepts_and_distinct() -> None:
    ids = [instance_id(n) for n in range(1, MOST_HOSTS + 1)]
    assert all(INSTANCE_ID.match(i) for i in ids) and len(set(ids)) == MOST_HOSTS
    assert ids[0] == "i-00000000000000001"

"""The registry of server adapters: a new server is one ``Server`` subclass plus one registration,
and everything that lists servers (parameters, host file, the document's patterns) reads it.

A fake adapter (``Caddy``) is registered here only, in a registry value handed to the same
functions ``main`` calls: it must be accepted end to end, and refused by the shipped registry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import pytest
from certrotate_installer import host_file, main, output, parameters
from certrotate_installer.distro import DEBIAN_DIRS, RHEL_DIRS, Distro
from certrotate_installer.host_file import HostConfig
from certrotate_installer.registry import Registry, choice_pattern
from certrotate_installer.servers import REGISTRY
from certrotate_installer.servers.base import Server

from rotation.emulation.allowed_pattern import agent_accepts, api_accepts, compile_pattern

ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:certs/web-AbCdEf"


class Caddy(Server):
    """A server the shipped installer does not know: the one file a newcomer writes."""

    name = "caddy"
    title = "Caddy"
    layouts = ("combined",)
    reload_modes = ("graceful",)
    config_key = "caddy_config"
    extra_paths = ("caddy_admin_socket",)
    distros = (
        Distro("debian", "caddy", "caddy", "caddy", *DEBIAN_DIRS),
        Distro("rhel", "caddy", "caddy", "caddy", *RHEL_DIRS),
    )
    admin_socket: ClassVar[str | None] = None

    def configure(self, config: HostConfig, euid: int) -> None:
        super().configure(config, euid)
        type(self).admin_socket = config.server_path("caddy_admin_socket")


WITH_CADDY = REGISTRY.with_adapter(Caddy)


def caddy_host(tmp_path: Path) -> tuple[Path, Path]:
    """A host file naming Caddy, and Caddy's config, both the test user's (as the local demo's)."""
    config = tmp_path / "Caddyfile"
    config.write_text("# read by Caddy, never by the installer\n")
    settings = {
        "server": "caddy",
        "caddy_config": str(config),
        "caddy_admin_socket": "/run/caddy/admin.sock",
        "state_directory": str(tmp_path / "state"),
    }
    path = tmp_path / "installer.json"
    path.write_text(json.dumps(settings))
    return path, config


def test_a_fake_adapter_registered_here_is_accepted_end_to_end(tmp_path: Path) -> None:
    path, config_file = caddy_host(tmp_path)
    environ = {
        "SSM_SecretArn": ARN,
        "SSM_Server": "caddy",
        "SSM_ServiceName": "caddy",
        "SSM_FileLayout": "combined",
        "SSM_CertificateFile": "/etc/ssl/certrotate/caddy.pem",
        host_file.HOST_CONFIG_VARIABLE: str(path),
    }
    request = parameters.read_request("install", environ, WITH_CADDY)
    config = host_file.load_host_config(environ, os.geteuid(), WITH_CADDY)
    assert config.server == "caddy" and config.server_path("caddy_config") == str(config_file)
    decided = main.complete_request(request, config, WITH_CADDY)
    assert (decided.server, decided.layout, decided.reload_mode, decided.port) == ("caddy", "combined", "graceful", 443)
    adapter = main.open_server(decided, config, {"PATH": "/usr/bin"}, os.geteuid(), WITH_CADDY)
    assert isinstance(adapter, Caddy) and adapter.main_config == str(config_file)
    assert adapter.distro.service == "caddy" and Caddy.admin_socket == "/run/caddy/admin.sock"
    # The documents' patterns, built from the same registry, accept it as SSM Agent's Go regexp and
    # the SSM API's Java regexp do (the emulation's engines), and still every shipped server.
    patterns = {p.name: p.pattern for p in parameters.document_parameters(parameters.Action.INSTALL, WITH_CADDY)}
    for name, value in (("Server", "caddy"), ("ServiceName", "caddy"), ("Server", "haproxy"), ("Server", "")):
        compiled = compile_pattern(patterns[name])
        assert agent_accepts(compiled, value) and api_accepts(compiled, value), (name, value)
    assert not agent_accepts(compile_pattern(patterns["Server"]), "caddyx")


def test_the_shipped_registry_refuses_the_fake_adapter_everywhere(tmp_path: Path) -> None:
    path, _ = caddy_host(tmp_path)
    with pytest.raises(output.InstallError, match=r"parameter Server has a value that is not allowed: 'caddy'"):
        parameters.read_request("install", {"SSM_SecretArn": ARN, "SSM_Server": "caddy"}, REGISTRY)
    with pytest.raises(output.InstallError, match=r"unknown key\(s\) caddy_admin_socket, caddy_config"):
        host_file.load_host_config({host_file.HOST_CONFIG_VARIABLE: str(path)}, os.geteuid(), REGISTRY)
    settings = {"server": "caddy"}
    with pytest.raises(output.InstallError, match="server must be one of apache, nginx, haproxy, not 'caddy'"):
        host_file.parse_host_config(str(path), settings, REGISTRY)


def test_an_adapter_keeps_to_its_own_reload_modes_and_layouts() -> None:
    config = host_file.parse_host_config("/etc/certrotate/installer.json", {"server": "caddy"}, WITH_CADDY)
    for environ, message in (
        ({"SSM_ReloadMode": "restart"}, "ReloadMode 'restart' is not allowed with Server caddy .allowed: graceful."),
        ({"SSM_FileLayout": "separate"}, "FileLayout 'separate' is not allowed with Server caddy"),
    ):
        request = parameters.read_request("install", {"SSM_SecretArn": ARN, **environ}, WITH_CADDY)
        with pytest.raises(output.InstallError, match=message) as caught:
            main.complete_request(request, config, WITH_CADDY)
        assert caught.value.code == output.Exit.BAD_PARAMETER


def test_registry_values_become_patterns_only_when_they_are_plain_words() -> None:
    assert choice_pattern(("apache", "nginx"), empty=True) == "^$|^(apache|nginx)$"
    assert REGISTRY.default() == "apache" and REGISTRY.services() == ("apache2", "httpd", "nginx", "haproxy")

    class Evil(Caddy):
        name = "x)|(.*"

    with pytest.raises(ValueError, match="registry values must be words"):
        parameters.server_parameters(Registry((*REGISTRY.adapters, Evil)))
    with pytest.raises(ValueError, match="'apache' is registered already"):
        REGISTRY.with_adapter(type("Again", (Caddy,), {"name": "apache"}))


def test_the_demos_servers_are_registered_adapters_and_write_host_files_they_accept(tmp_path: Path) -> None:
    """The demo, the CLI's ``demo --server`` and the benchmarks read ``LOCAL_SERVERS``: each is the
    harness of a registered adapter, fed in the adapter's own layout, through its own host-file keys."""
    from rotation.cli.local_servers import LOCAL_SERVERS

    assert set(LOCAL_SERVERS) <= set(REGISTRY.names())
    for name, harness in LOCAL_SERVERS.items():
        adapter = REGISTRY.adapter(name)
        local = harness(tmp_path / name, 8443)
        assert harness.combined == (adapter.layouts[0] == "combined") and len(local.live_files()) == (
            1 if harness.combined else 3
        )
        written = json.loads(local.write_installer_config().read_text())
        config = host_file.parse_host_config(str(local.installer_config), written, REGISTRY)
        assert config.server_path(adapter.config_key) == str(local.config)
        assert config.managed_files == tuple(map(str, local.live_files()))
        request = parameters.read_request(
            "install",
            {"SSM_SecretArn": ARN, **{"SSM_" + k: v for k, v in local.document_parameters().items()}},
            REGISTRY,
        )
        decided = main.complete_request(request, config, REGISTRY)
        assert decided.server == name and decided.port == 8443 and decided.files[0] == str(local.live_files()[0])

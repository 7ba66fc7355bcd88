"""The contract of a TLS server adapter: what the installer asks of the server it feeds.

To add a server: write one module here with a ``Server`` subclass that sets the class attributes
below and implements ``config_test`` and ``reload``, then add the class to ``REGISTRY`` in
``servers/__init__.py``; the document parameters (Server, ServiceName, FileLayout, ReloadMode), the
host file's keys, the build, the CLI and the benchmarks read it from there.

``main`` builds one ``Server`` per run (``REGISTRY.adapter(name)(distro, main_config, port, env)``)
and calls only these, in this order:

- install, after the new files are in place: ``config_test()``, then ``reload(mode)``, then
  ``wait_for(facts)``; a ``False`` (or a proof that is not ``ok``) restores the previous files;
- undo (rollback after a failure, recovery after a kill): ``config_test()``, then
  ``reload("graceful")``, both reported, never raised; after a failed install, ``wait_for`` of the
  restored certificate (``served_check.RECHECK_SECONDS``), reported;
- a run that finds the certificate already installed: ``wait_for`` (RECHECK_SECONDS), a warning.

Rules for a subclass:
- set ``name`` (the Server parameter's value and the host file's ``server``: a lower-case word),
  ``title`` (the word in every message: "Apache config test failed"), ``distros`` (one
  ``distro.Distro`` row per distribution family: its service name, the ServiceName value, control
  tool, server binary, certrotate's default directories), ``layouts`` (the FileLayout values it
  takes, its default first), ``reload_modes`` (the ReloadMode values, "graceful" among them: the
  undo uses it), ``config_key`` (the host file's key naming its main config, ``<name>_config``) and
  ``extra_paths`` (any other host-file keys it owns, each an absolute path, read in ``configure``
  from ``HostConfig.server_path``) and ``client_ca_key`` (the key naming its client-CA file, where
  a trust bundle goes: ``trust_run``), ``crl_key`` and ``crl_directive`` (the key naming its CRL
  file and the directive that reads it, checking the whole client chain: ``crl_run``);
- implement ``config_test`` and ``reload``; never raise for a failing test or reload, return
  ``(False, text)``; ``text`` is the tool's own output (the caller prints its last line through
  ``output.printable``), it never holds key material;
- run tools only through ``tools.find_tool`` (a binary nobody but root can have replaced), with
  ``self.env`` (``tools.tool_environment``), stdin from /dev/null and a timeout:
  ``self._test(command)`` and ``self._control(command)`` do exactly that;
- ``served`` is one TLS handshake with SNI on the first address the server's own processes listen
  on at ``port``; ``wait_for`` is the served-truth check (``served_check.prove_served``: every one
  of 16 fresh connections, spread over those addresses, presents the new certificate byte for byte)
  and returns its ``ServedProof``; every server keeps it. The server's own processes
  (``server_processes``) run ``distro.server`` (found by ``find_tool``) as root, the installer's
  user or one of ``users``; a subclass whose listening sockets are held only by its workers names
  their user in ``users``.
"""

import socket
import ssl
import subprocess
from typing import Dict, List, Optional, Tuple

from ..certificate import CertificateFacts
from ..distro import Distro
from ..host_file import HostConfig
from ..served_check import SERVE_WAIT_SECONDS, ServedProof, prove_served
from ..server_processes import server_listeners, trusted_uids
from ..tools import find_tool

COMMAND_TIMEOUT_SECONDS = 120  # a config test or reload that takes longer has failed


class Server:
    """One TLS server on this host: config test, reload and proof of the served certificate."""

    name = "server"  # the Server parameter's value and the host file's "server" (a lower-case word)
    title = "Server"  # the word in messages: "<title> config test failed"
    distros: Tuple[Distro, ...] = ()
    layouts: Tuple[str, ...] = ("separate", "combined")  # the FileLayout values it can be fed, its default first
    reload_modes: Tuple[str, ...] = ("graceful", "restart")  # the ReloadMode values it takes
    config_key = ""  # the host file's key naming its main config (an absolute path); "" for none
    extra_paths: Tuple[str, ...] = ()  # the host file's other keys it owns (absolute paths: HAProxy's sockets)
    # The host file's key naming the server's client-CA file for mutual TLS (the file a trust bundle
    # with ``client_ca`` goes to: Apache SSLCACertificateFile, nginx ssl_client_certificate, HAProxy
    # ca-file); "" for a server that takes none.
    client_ca_key = ""
    # The host file's key naming the server's CRL file (the CRLs of the client-CA bundle's CAs, ``crl_run``)
    # and, for messages and the README, the directive that reads it; "" for a server that takes none.
    crl_key = ""
    crl_directive = ""
    files: Tuple[str, ...] = ()  # the certificate files of this run (set by main once they are checked)
    euid = 0  # the installer's user (set by ``configure``)
    users: Tuple[str, ...] = ()  # the users the server's own processes may run as, besides root

    def __init__(self, distro: Distro, main_config: Optional[str], port: int, env: Dict[str, str]) -> None:
        self.distro = distro  # the row of ``distros`` this host matches
        self.main_config = main_config  # the host file's server config (tests, local demo), else None
        self.port = port  # the local port where the server serves TLS
        self.env = env  # the environment of every tool this adapter runs

    @classmethod
    def host_paths(cls) -> Tuple[str, ...]:
        """The host file's keys this adapter owns, each an absolute path: its config first."""
        own = (cls.config_key,) if cls.config_key else ()
        mutual = tuple(key for key in (cls.client_ca_key, cls.crl_key) if key)
        return own + cls.extra_paths + mutual

    def configure(self, config: HostConfig, euid: int) -> None:
        """Take what else the host file says about this server (HAProxy: its sockets)."""
        self.euid = euid

    def config_test(self) -> Tuple[bool, str]:
        """Whether the server accepts its configuration with the files now on disk, and its output."""
        raise NotImplementedError

    def reload(self, mode: str) -> Tuple[bool, str]:
        """Make the server read the files again (``mode``: one of the document's ReloadMode values,
        or "graceful" on undo); start it when it is not running. Returns (succeeded, output)."""
        raise NotImplementedError

    def listeners(self) -> List[Tuple[str, int]]:
        """The addresses (wildcards through loopback) where the server's own processes listen on ``port``."""
        binary = find_tool(self.distro.server, self.env)
        return server_listeners(self.port, binary, trusted_uids(self.euid, self.users))

    def served(self, hostname: str) -> Optional[bytes]:
        """The DER certificate the server's first listener on ``port`` presents for SNI ``hostname``,
        None when nothing of the server's answers TLS there."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the DER served is compared byte for byte
        listeners = self.listeners()
        if not listeners:
            return None
        try:
            raw = socket.create_connection(listeners[0], timeout=3)
            with raw, context.wrap_socket(raw, server_hostname=hostname) as tls:
                return tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError, ValueError):
            return None

    def wait_for(self, facts: CertificateFacts, deadline_seconds: float = SERVE_WAIT_SECONDS) -> ServedProof:
        """The served-truth check (``served_check``): fresh TLS connections with SNI to the server's
        own listeners on ``port`` until SAMPLE in a row present the new certificate, at most
        ``deadline_seconds``. ``proof.ok``, ``proof.why(port)`` when not, ``proof.summary``."""
        binary = find_tool(self.distro.server, self.env)
        uids = trusted_uids(self.euid, self.users)
        return prove_served(
            lambda: server_listeners(self.port, binary, uids), facts.common_name, facts, deadline_seconds
        )

    def _test(self, command: List[str]) -> Tuple[bool, str]:
        """Run a config test: (exit 0, stdout and stderr)."""
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                timeout=COMMAND_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False, f"the config test did not finish in {COMMAND_TIMEOUT_SECONDS} s"
        return done.returncode == 0, done.stdout.decode("utf-8", "replace")

    def _control(self, command: List[str]) -> Tuple[bool, str]:
        """Run a reload or start: (exit 0, its first 64 KB of output). Output goes to a file, not a
        pipe, because a daemon started here would hold a pipe open; no descriptor of ours but that
        file is inherited (Python's descriptors are non-inheritable)."""
        import tempfile

        with tempfile.TemporaryFile() as output:
            try:
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    env=self.env,
                    timeout=COMMAND_TIMEOUT_SECONDS,
                    check=False,
                    close_fds=True,
                )
            except subprocess.TimeoutExpired:
                return False, f"{' '.join(command)} did not finish in {COMMAND_TIMEOUT_SECONDS} s"
            output.seek(0)
            text = output.read(65536).decode("utf-8", "replace")
        return done.returncode == 0, text

"""Apache httpd: ``apache2ctl``/``apachectl`` (or the server binary with ``-f``) for the config
test and the graceful reload or restart; the served certificate proven by the base class's TLS check."""

from typing import List, Tuple

from ..distro import DEBIAN_DIRS, RHEL_DIRS, Distro
from ..tools import find_tool
from .base import Server


class Apache(Server):
    """The config test, reload and served-certificate check of the host's Apache."""

    name = "apache"
    title = "Apache"
    config_key = "apache_config"
    client_ca_key = "apache_client_ca_file"  # SSLCACertificateFile
    crl_key = "apache_crl_file"
    # chain, not leaf: the whole client chain, as nginx's ssl_crl and HAProxy's crl-file check it
    crl_directive = "SSLCARevocationFile with SSLCARevocationCheck chain"
    distros = (
        Distro("debian", "apache2", "apache2ctl", "apache2", *DEBIAN_DIRS),
        Distro("rhel", "httpd", "apachectl", "httpd", *RHEL_DIRS),
    )

    def _command(self, *arguments: str) -> List[str]:
        if self.main_config:
            return [find_tool(self.distro.server, self.env), "-f", self.main_config, *arguments]
        return [find_tool(self.distro.control, self.env), *arguments]

    def config_test(self) -> Tuple[bool, str]:
        return self._test(self._command("-t") if self.main_config else self._command("configtest"))

    def reload(self, mode: str) -> Tuple[bool, str]:
        """graceful or restart; starts Apache when it is not running."""
        return self._control(self._command("-k", mode) if self.main_config else self._command(mode))

"""The TLS servers the installer feeds: ``REGISTRY``, the one list of adapters (``base.Server``
subclasses, one module each), which the parameters, the host file and the build read."""

from ..registry import Registry
from .apache import Apache
from .haproxy import Haproxy
from .nginx import Nginx

# One line per adapter; the first is the server of a host whose host file names none.
REGISTRY = Registry((Apache, Nginx, Haproxy))

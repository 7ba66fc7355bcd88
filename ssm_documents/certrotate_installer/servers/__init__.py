"""The TLS servers the installer feeds, each a ``base.Server`` subclass, by ``Server.name``."""

from typing import Dict, Type

from .apache import Apache
from .base import Server

SERVERS: Dict[str, Type[Server]] = {cls.name: cls for cls in (Apache,)}

"""The registry of server adapters as data: the names, services, layouts, reload modes and host-file
keys that the documents' parameters and the host file accept, all read off the adapters themselves.

``servers/__init__.py`` holds the one ``REGISTRY`` (one line per adapter); ``parameters`` and
``host_file`` take it as a value, so they never import the adapters (which import them), and a test
can hand them a registry with one more adapter.
"""

import re
from typing import TYPE_CHECKING, Iterable, NamedTuple, Tuple, Type

if TYPE_CHECKING:  # the adapters import this module's readers: typing only
    from .servers.base import Server

# What a registered value may be: it becomes an alternative of a document's allowedPattern, and a
# word in messages, so only letters, digits, "_" and "-" (nothing Go, Java or RE2 read as syntax).
VALUE_PATTERN = r"[a-z0-9][a-z0-9_-]{0,62}"


def unique(values: Iterable[str]) -> Tuple[str, ...]:
    """Pure: ``values`` without repeats, in the order they first come."""
    return tuple(dict.fromkeys(values))


def choice_pattern(values: Tuple[str, ...], empty: bool) -> str:
    """Pure: the anchored pattern of exactly one of ``values`` (``empty``: or nothing), the same in
    Python, Go (SSM Agent), Java (the SSM API) and RE2 (the local runner).

    Raises:
        ValueError: a value is not a plain word (``VALUE_PATTERN``), or there is none.
    """
    bad = [value for value in values if re.fullmatch(VALUE_PATTERN, value) is None]
    if bad or not values:
        raise ValueError(f"registry values must be words matching {VALUE_PATTERN}, not {bad or 'nothing'}")
    return ("^$|" if empty else "") + "^(" + "|".join(values) + ")$"


class Registry(NamedTuple):
    """The server adapters (``servers.base.Server`` subclasses) a run may feed, the first the default
    of a host whose host file names no server (Apache, as before there was a choice)."""

    adapters: Tuple["Type[Server]", ...]

    def names(self) -> Tuple[str, ...]:
        return tuple(adapter.name for adapter in self.adapters)

    def adapter(self, name: str) -> "Type[Server]":
        """The adapter called ``name``.

        Raises:
            KeyError: none is.
        """
        for adapter in self.adapters:
            if adapter.name == name:
                return adapter
        raise KeyError(name)

    def default(self) -> str:
        return self.adapters[0].name

    def services(self) -> Tuple[str, ...]:
        """Every ServiceName an adapter's distribution rows answer to."""
        return unique(row.service for adapter in self.adapters for row in adapter.distros)

    def layouts(self) -> Tuple[str, ...]:
        return unique(layout for adapter in self.adapters for layout in adapter.layouts)

    def reload_modes(self) -> Tuple[str, ...]:
        return unique(mode for adapter in self.adapters for mode in adapter.reload_modes)

    def host_paths(self) -> Tuple[str, ...]:
        """The host file's keys the adapters own, each an absolute path (configs, sockets)."""
        return unique(key for adapter in self.adapters for key in adapter.host_paths())

    def with_adapter(self, adapter: "Type[Server]") -> "Registry":
        """This registry and one more adapter (a test's, or a site's own build).

        Raises:
            ValueError: its name is taken.
        """
        if adapter.name in self.names():
            raise ValueError(f"a server adapter named {adapter.name!r} is registered already")
        return Registry((*self.adapters, adapter))

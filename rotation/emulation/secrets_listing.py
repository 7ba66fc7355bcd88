"""ListSecrets paging for moto that costs one page per page.

moto 5.2's ListSecrets filters and serializes *every* secret on every call, then slices out the
requested page: reading 10,000 secrets 100 a page is a million ``to_dict`` calls (O(n²)), about 40
of the 46 s a ``certrotate status`` over 10,000 secrets took against it. :func:`paged_list_secrets`
makes a page walk the secrets from the token on and stop after the page (and one match ahead, to
know whether there is a next page). Same filters, same order (creation order) and same results;
the token stays an opaque position. Enabled by the fleet-read benchmark.

A request whose ``name`` filters hold only prefixes (no ``!`` negation; AWS: a case-sensitive
prefix match, values OR-ed, filters ANDed) walks only the secrets those prefixes match, found in a
name index (sorted names, rebuilt when the set of secrets changes), instead of every secret from
the token on: real Secrets Manager does not scan an account per page, and ``status``'s split
listing (a chain per prefix) would otherwise measure moto's scans.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import threading
from collections.abc import Iterator
from typing import Any

from rotation.emulation.moto_patch import replaced


class _NameIndex:
    """Positions (creation order) of a backend's secrets, looked up by name prefix."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # moto's server answers each request on its own thread
        self._keys: list[Any] = []
        self._sorted: list[tuple[str, int]] = []

    def positions(self, secrets: dict[Any, Any], prefixes: list[str]) -> list[int]:
        with self._lock:
            keys = list(secrets)
            if keys != self._keys:
                self._keys = keys
                self._sorted = sorted((str(secret.name), n) for n, secret in enumerate(secrets.values()))
            ordered = self._sorted
        found: set[int] = set()
        for prefix in prefixes:
            at = bisect.bisect_left(ordered, (prefix, -1))
            while at < len(ordered) and ordered[at][0].startswith(prefix):
                found.add(ordered[at][1])
                at += 1
        return sorted(found)


def _name_prefixes(filters: list[dict[str, Any]]) -> list[str] | None:
    """The prefixes every listed name must start with one of (the narrowest ``name`` filter), or None."""
    candidates = [list(f["Values"]) for f in filters if f.get("Key") == "name"]
    usable = [values for values in candidates if values and not any(v.startswith("!") for v in values)]
    return min(usable, key=len) if usable else None


@contextlib.contextmanager
def paged_list_secrets() -> Iterator[None]:
    from moto.secretsmanager.models import MAX_RESULTS_DEFAULT, SecretsManagerBackend, _matches

    indexes: dict[int, _NameIndex] = {}

    def list_secrets(
        self: Any,
        filters: list[dict[str, Any]],
        max_results: int = MAX_RESULTS_DEFAULT,
        next_token: str | None = None,
        include_planned_deletion: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        def listed(secret: Any) -> bool:
            if getattr(secret, "deleted_date", None) and not include_planned_deletion:
                return False
            return bool(_matches(secret, filters))

        start = int(next_token or 0)
        size = int(max_results or MAX_RESULTS_DEFAULT)
        page: list[dict[str, Any]] = []
        prefixes = _name_prefixes(filters or [])
        walk: Iterator[tuple[int, Any]]
        if prefixes is None:
            walk = enumerate(itertools.islice(self.secrets.values(), start, None), start)
        else:
            values = list(self.secrets.values())
            index = indexes.setdefault(id(self), _NameIndex())
            walk = ((n, values[n]) for n in index.positions(self.secrets, prefixes) if n >= start)
        for position, secret in walk:
            if not listed(secret):
                continue
            if len(page) == size:
                return page, str(position)  # a further match: the next page starts here
            page.append(secret.to_dict())
        return page, None

    with replaced(SecretsManagerBackend, list_secrets=list_secrets):
        yield


@contextlib.contextmanager
def indexed_secret_lookups() -> Iterator[None]:
    """moto's secret lookups by name or ARN from an index instead of a scan of every secret.

    moto 5.2's ``SecretsStore`` finds a secret by walking every secret for one whose ARN or name is
    the id (``__contains__``, then ``__getitem__``): BatchGetSecretValue of 10,000 secrets by ARN
    is 10^8 comparisons (O(n²)), most of what the server spent in a ``status`` over 10,000
    secrets. Here a lookup asks an index (each ARN and name to the first secret, in the store's
    order, that has it: the secret the scan finds first), rebuilt after the store changes, and
    falls back to moto's own lookup (partial ARNs) when the id is not in it. Same answers.
    """
    from moto.secretsmanager.models import SecretsStore

    originals = {name: getattr(SecretsStore, name) for name in ("__setitem__", "pop", "__delitem__")}
    lookups = {name: getattr(SecretsStore, name) for name in ("__contains__", "__getitem__", "get")}
    lock = threading.Lock()

    def index(store: Any) -> dict[str, Any]:
        with lock:
            built = store.__dict__.get("_certrotate_index")
            if built is None or built[0] != len(dict.keys(store)):
                by_id: dict[str, Any] = {}
                for secret in dict.values(store):
                    by_id.setdefault(secret.arn, secret)
                    by_id.setdefault(secret.name, secret)
                built = (len(dict.keys(store)), by_id)
                store.__dict__["_certrotate_index"] = built
            return built[1]

    def changing(name: str) -> Any:
        def change(store: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                store.__dict__.pop("_certrotate_index", None)
            return originals[name](store, *args, **kwargs)

        return change

    def contains(store: Any, key: str) -> bool:
        return key in index(store) or bool(lookups["__contains__"](store, key))

    def getitem(store: Any, key: str) -> Any:
        found = index(store).get(key)
        return found if found is not None else lookups["__getitem__"](store, key)

    def get(store: Any, key: str) -> Any:
        found = index(store).get(key)
        return found if found is not None else lookups["get"](store, key)

    patched = {"__contains__": contains, "__getitem__": getitem, "get": get}
    patched.update({name: changing(name) for name in originals})
    with replaced(SecretsStore, **patched):  # __contains__ and get are dict's own: deleted again on the way out
        yield

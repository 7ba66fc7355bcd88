"""ListSecrets paging for moto that costs one page per page.

moto 5.2's ListSecrets filters and serializes *every* secret on every call, then slices out the
requested page: reading 10,000 secrets 100 a page is a million ``to_dict`` calls (O(n²)), about 40
of the 46 s a ``certrotate status`` over 10,000 secrets took against it. :func:`paged_list_secrets`
makes a page walk the secrets from the token on and stop after the page (and one match ahead, to
know whether there is a next page). Same filters, same order (creation order) and same results;
the token stays an opaque position. Enabled by the fleet-read benchmark.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def paged_list_secrets() -> Iterator[None]:
    from moto.secretsmanager.models import MAX_RESULTS_DEFAULT, SecretsManagerBackend, _matches

    original = SecretsManagerBackend.list_secrets

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
        position = start
        for position, secret in enumerate(itertools.islice(self.secrets.values(), start, None), start):
            if not listed(secret):
                continue
            if len(page) == size:
                return page, str(position)  # a further match: the next page starts here
            page.append(secret.to_dict())
        return page, None

    SecretsManagerBackend.list_secrets = list_secrets  # type: ignore[method-assign]
    try:
        yield
    finally:
        SecretsManagerBackend.list_secrets = original  # type: ignore[method-assign]

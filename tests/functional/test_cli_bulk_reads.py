"""Issue 18: ``status`` reads a large fleet concurrently but within the quota ``--max-rate`` sets."""

from __future__ import annotations

import json
import uuid

import pytest

from rotation.emulation.throttling import throttled_moto
from tests.support.cli import certrotate, client

BATCH = ("secretsmanager", "BatchGetSecretValue")


@pytest.mark.slow
def test_status_stays_inside_the_rate_it_is_given(endpoint: str, ca: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}/"
    sm = client(endpoint, "secretsmanager")
    spec = {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "CERTIFICATE_SERIAL": "0A"}
    for n in range(230):
        sm.create_secret(Name=f"{prefix}{n:03d}", SecretString=json.dumps({**spec, "COMMON_NAME": f"h{n}.example"}))
    with throttled_moto({BATCH: 4.0}, burst_seconds=0.25) as bucket:  # 4/s, one call of burst
        fast = certrotate("status", "--prefix", prefix, "--max-rate", "100", "--output", "json", endpoint=endpoint)
    assert fast.returncode == 0, fast.stderr
    assert bucket.throttled[BATCH] > 0  # concurrent reads at 100/s do hit a 4/s quota (and ride it out) ...
    with throttled_moto({BATCH: 4.0}, burst_seconds=0.25) as bucket:  # 2/s leaves 250 ms for scheduling jitter
        paced = certrotate("status", "--prefix", prefix, "--max-rate", "2", "--output", "json", endpoint=endpoint)
    assert paced.returncode == 0, paced.stderr
    assert bucket.throttled[BATCH] == 0 and bucket.accepted[BATCH] == 12  # ... and --max-rate keeps them under it
    rows = json.loads(paced.stdout)
    assert sorted(r["name"] for r in rows) == [f"{prefix}{n:03d}" for n in range(230)]
    bad = certrotate("status", "--max-rate", "0", endpoint=endpoint)
    assert bad.returncode != 0 and "--max-rate '0'" in bad.stderr


def test_status_lists_names_with_every_allowed_character_once(endpoint: str, ca: str) -> None:
    """A listing long enough to be split into chains by name prefix still shows every secret once."""
    from collections import Counter

    from rotation.cli.bulk_reads import NAME_ALPHABET

    prefix = f"t{uuid.uuid4().hex[:8]}/"
    sm = client(endpoint, "secretsmanager")
    spec = {"CERTIFICATE_TYPE": "PCA_ISSUED", "CA_ARN": ca, "CERTIFICATE_SERIAL": "0A"}
    names = [prefix, *(f"{prefix}{c}" for c in NAME_ALPHABET), *(f"{prefix}{c}a/{c}" for c in NAME_ALPHABET)]
    names += [f"{prefix}payments/web-{n:03d}" for n in range(120)]
    for name in names:
        sm.create_secret(Name=name, SecretString=json.dumps(spec))
    shown = certrotate("status", "--prefix", prefix, "--output", "json", endpoint=endpoint)
    assert shown.returncode == 0, shown.stderr
    assert Counter(r["name"] for r in json.loads(shown.stdout)) == Counter(names)

"""Keys made ahead in the background: each handed out once, of the algorithm asked, never reused."""

from __future__ import annotations

import pytest

from rotation.issuance.keys import SPARE_KEYS, key_algorithm_of, public_key_der
from rotation.issuance.spec import KeyAlgorithm


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_prime256v1])
def test_every_key_taken_is_new_and_of_the_algorithm_asked(algorithm: KeyAlgorithm) -> None:
    SPARE_KEYS.clear()
    taken = [SPARE_KEYS.take(algorithm) for _ in range(4)]
    assert all(key_algorithm_of(k) is algorithm for k in taken)
    assert len({public_key_der(k) for k in taken}) == 4


def test_an_rsa_spare_is_made_in_the_background_and_used_once() -> None:
    SPARE_KEYS.clear()
    first = SPARE_KEYS.take(KeyAlgorithm.RSA_2048)
    SPARE_KEYS.wait()
    spare = SPARE_KEYS._spares[KeyAlgorithm.RSA_2048].result()
    second = SPARE_KEYS.take(KeyAlgorithm.RSA_2048)
    assert second is spare and second is not first
    assert SPARE_KEYS._spares[KeyAlgorithm.RSA_2048] is not None  # the next one is under way
    assert SPARE_KEYS.take(KeyAlgorithm.RSA_2048) is not spare

"""Unit tests of the host installer, imported directly from the package ssm_documents/certrotate_installer/."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.installer.helpers import LocalUser, local_user, user_problem


@pytest.fixture
def attacker() -> Iterator[LocalUser]:
    problem = user_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    with local_user() as user:
        yield user

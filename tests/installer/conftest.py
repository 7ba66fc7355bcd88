"""Unit tests of the host installer, imported directly from ssm_documents/install_certificate.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.installer.helpers import LocalUser, load_program, local_user, user_problem


@pytest.fixture(scope="session")
def program() -> ModuleType:
    return load_program()


@pytest.fixture
def attacker() -> Iterator[LocalUser]:
    problem = user_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    with local_user() as user:
        yield user

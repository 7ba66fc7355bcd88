"""The emulation's one way to replace moto's attributes for a context (rotation.emulation.moto_patch)."""

from __future__ import annotations

from typing import Any

import pytest

from rotation.emulation.moto_patch import replaced


class Base:
    def inherited(self) -> str:
        return "base"


class Moto(Base):
    @classmethod
    def made(cls) -> str:
        return cls.__name__

    def own(self) -> str:
        return "own"


def test_what_the_class_had_comes_back_as_it_was_and_what_it_lacked_goes() -> None:
    before = dict(Moto.__dict__)
    with (
        pytest.raises(RuntimeError),
        replaced(
            Moto,
            made=classmethod(lambda cls: "patched"),
            own=lambda self: "patched",
            inherited=lambda self: "patched",
            renew=lambda self: "added",
        ),
    ):
        patched: Any = Moto()
        assert (Moto.made(), patched.own(), patched.inherited(), patched.renew()) == ("patched",) * 3 + ("added",)
        raise RuntimeError("the context ends by an error")
    assert dict(Moto.__dict__) == before  # the classmethod object itself, not a bound method
    assert Moto().inherited() == "base" and not hasattr(Moto, "renew")


def test_real_acm_chain_leaves_moto_acm_as_it_found_it() -> None:
    """It adds RenewCertificate (moto has none) and replaces a classmethod: both undone exactly."""
    from moto.acm import models, responses

    from rotation.emulation.pki import real_acm_chain

    bundle, response = dict(models.CertBundle.__dict__), dict(responses.AWSCertificateManagerResponse.__dict__)
    with real_acm_chain():
        assert "renew_certificate" in responses.AWSCertificateManagerResponse.__dict__
    assert dict(models.CertBundle.__dict__) == bundle
    assert dict(responses.AWSCertificateManagerResponse.__dict__) == response

"""Replacing attributes of moto's classes for the duration of a context, and putting back exactly what was there."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def replaced(owner: type, **attributes: Any) -> Iterator[None]:
    """Set ``attributes`` on the class ``owner`` for the duration.

    On the way out each name gets back the class's own attribute (the function, property or
    classmethod object itself, not what looking it up gives), or is deleted where the class only
    inherited it or had none (an operation moto lacks).
    """
    own = {name: owner.__dict__[name] for name in attributes if name in owner.__dict__}
    for name, value in attributes.items():
        setattr(owner, name, value)
    try:
        yield
    finally:
        for name in attributes:
            if name in own:
                setattr(owner, name, own[name])
            else:
                delattr(owner, name)

"""The rendered templates read as YAML, by libyaml where PyYAML was built with it.

``cfn/central-account.yaml`` is 460 KB (the documents are embedded): PyYAML's pure-Python loader
takes about a second of CPU on it, its libyaml loader (``CSafeLoader``: the same safe constructors
over a C parser) a fifth of that, and some tests load it at collection, once per xdist worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: ``yaml.SafeLoader``'s equivalent in C, or ``yaml.SafeLoader`` itself without libyaml.
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_template(path: Path) -> dict[str, Any]:
    """The template at ``path`` as ``yaml.safe_load`` reads it."""
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=SafeLoader)
    return loaded

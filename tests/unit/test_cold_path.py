"""Issue 18: a container's first invocation imports only what its steps use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FIRST_INVOCATION = """
import sys
import rotation.handler, rotation.engine
services = rotation.handler.services()
services.pca_for_region("us-east-1")
unused = ("boto3", "s3transfer", "rotation.ledger", "rotation.revoker", "rotation.fleet")
print(" ".join(m for m in unused if m in sys.modules))
"""


def test_a_container_without_a_ledger_loads_neither_boto3_nor_the_ledger() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CERTROTATE_"))}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", PYTHONPATH=str(ROOT))
    loaded = subprocess.run(
        [sys.executable, "-c", FIRST_INVOCATION], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert loaded.stdout.split() == []


def test_the_engine_names_the_ledger_variable_as_the_ledger_does() -> None:
    from rotation import engine, ledger

    assert engine.LEDGER_TABLE_ENV == ledger.LEDGER_TABLE_ENV

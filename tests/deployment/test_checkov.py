"""checkov over the rendered templates: no finding that the template does not justify.

checkov pins boto3 1.35 and packaging<24, which would hold back the whole dev environment (and
pytest with it), so it lives in its own virtual environment: `.ci/run` makes it in
``build/checkov`` and this test finds it there, on ``$CHECKOV`` or on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rotation.build.templates import OUTPUT
from tests.integration.conftest import require
from tests.support.templates import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(OUTPUT.glob("*.yaml"))


def checkov() -> str | None:
    for candidate in (os.environ.get("CHECKOV"), shutil.which("checkov"), str(ROOT / "build/checkov/bin/checkov")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def justified_skips() -> dict[tuple[str, str, str], str]:
    """(template, resource, check id) -> the justification written beside the skip."""
    skips = {}
    for template in TEMPLATES:
        for logical_id, resource in load_template(template)["Resources"].items():
            for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", []):
                skips[(template.name, logical_id, skip["id"])] = skip.get("comment", "")
    return skips


@pytest.mark.slow
def test_checkov_finds_nothing_unjustified() -> None:
    binary = checkov()
    require(
        None
        if binary
        else "checkov is not installed (python -m venv build/checkov && build/checkov/bin/pip install checkov)"
    )
    assert binary is not None
    arguments = [binary, "--framework", "cloudformation", "--skip-download", "--compact", "-o", "json"]
    for template in TEMPLATES:
        arguments += ["-f", str(template)]
    result = subprocess.run(arguments, capture_output=True, text=True, check=False, cwd=ROOT, timeout=300)
    report: dict[str, Any] = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0 and summary["passed"] > 50
    skips = justified_skips()
    seen = set()
    for check in report["results"]["skipped_checks"]:
        key = (Path(check["file_path"]).name, check["resource"].split(".", 1)[1], check["check_id"])
        seen.add(key)
        assert len(skips.get(key, "")) > 30, f"{key}: a skip needs a reason beside it"
    assert seen == set(skips), f"skips checkov never applied: {sorted(set(skips) - seen)}"

"""The project's promises that are about files, not code paths."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

from rotation.emulation.rotation_service import rotation_event

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block, "README.md must open with a sh block of two commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_second() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("certrotate demo")
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert commands[1] in ci_lines


def test_the_lambda_handler_string_resolves() -> None:
    module, function = ["rotation.handler", "lambda_handler"]
    assert callable(getattr(importlib.import_module(module), function))


def test_event_fixtures_have_the_shape_the_emulated_service_sends() -> None:
    for path in sorted((ROOT / "tests" / "fixtures" / "events").glob("*.json")):
        fixture = json.loads(path.read_text())
        sent = rotation_event(fixture["Step"], fixture["SecretId"], fixture["ClientRequestToken"])
        assert set(sent) <= set(fixture), path.name
        assert fixture["Step"] == path.stem

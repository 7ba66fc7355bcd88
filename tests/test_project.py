"""The project's promises that are about files, not code paths."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import time
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


def test_the_demo_installs_its_own_extra_with_what_it_runs() -> None:
    """The first command installs `.[demo]`, not the dev tools; the extra has the aws CLI the installer calls."""
    import tomllib

    assert readme_commands()[0] == "pip install -e '.[demo]' && certrotate demo"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    demo = {re.split(r"[\[>=<]", requirement)[0].lower() for requirement in extras["demo"]}
    assert {"moto", "awscli", "pyyaml", "flask", "flask-cors"} <= demo
    assert not demo & {"pytest", "mypy", "ruff", "cfn-lint", "policy_sentry"}


def test_the_lambda_handler_string_resolves() -> None:
    module, function = ["rotation.handler", "lambda_handler"]
    assert callable(getattr(importlib.import_module(module), function))


def test_event_fixtures_have_the_shape_the_emulated_service_sends() -> None:
    for path in sorted((ROOT / "tests" / "fixtures" / "events").glob("*.json")):
        fixture = json.loads(path.read_text())
        sent = rotation_event(fixture["Step"], fixture["SecretId"], fixture["ClientRequestToken"])
        assert set(sent) <= set(fixture), path.name
        assert fixture["Step"] == path.stem


def readme_cli_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The command line") :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "the command-line section shows its commands in a sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readmes_day_runs_as_written_against_the_sandbox(tmp_path: Path) -> None:
    """The README's "A day with certrotate" block, as one shell script: it starts the sandbox itself."""
    from tests.support.cli import SCRIPT, cli_env

    examples = readme_cli_examples()
    assert len(examples) >= 10
    assert examples[0] == 'eval "$(certrotate sandbox --detach)"'
    (tmp_path / "day.sh").write_text("\n".join(examples) + "\n")
    env = cli_env()
    env["PATH"] = f"{SCRIPT.parent}:{env['PATH']}"
    # Each line must succeed (-e: the first that fails stops the day); the sandbox is stopped even then.
    wrapper = 'trap \'[ -n "${CERTROTATE_SANDBOX_PID:-}" ] && kill "$CERTROTATE_SANDBOX_PID" 2>/dev/null\' EXIT\n'
    wrapper += "set -ex\n. ./day.sh\n"
    result = subprocess.run(
        ["bash", "-c", wrapper], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "PRIVATE KEY" not in result.stdout + result.stderr
    assert "payments/web" in result.stdout
    # The last line stopped the sandbox: nothing is left running.
    pid = int(re.findall(r"CERTROTATE_SANDBOX_PID=(\d+)", result.stderr)[-1])
    for _ in range(300):  # 30 s: stopping moto's server on a loaded machine takes a while
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the sandbox (pid {pid}) is still running")


#: Modules of rotation/ allowed over :data:`MODULE_LINE_LIMIT`, each with the reason (issue 26).
LONG_MODULES = {
    "rotation/cli/demo.py": "the demo's script; split with the server-adapter registry that reshapes it (issue 26)",
}
MODULE_LINE_LIMIT = 400


def test_no_module_in_rotation_is_over_400_lines() -> None:
    """A module over 400 lines usually hides lists that must be edited together: split it by job.

    An exception is listed with its reason, and leaves the list once it is short again.
    """
    lengths = {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for path in sorted((ROOT / "rotation").rglob("*.py"))
    }
    too_long = {path: n for path, n in lengths.items() if n > MODULE_LINE_LIMIT and path not in LONG_MODULES}
    assert not too_long, f"over {MODULE_LINE_LIMIT} lines, split by job: {too_long}"
    healed = [path for path in LONG_MODULES if lengths.get(path, 0) <= MODULE_LINE_LIMIT]
    assert not healed, f"no longer over {MODULE_LINE_LIMIT} lines (or gone): remove from LONG_MODULES: {healed}"

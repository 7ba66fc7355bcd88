"""The project's promises that are about files, not code paths."""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

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


def readme_section(heading: str) -> str:
    """The README's text under ``heading`` (a whole line), up to the next heading of its level or above."""
    text = (ROOT / "README.md").read_text()
    level = heading.split(" ", 1)[0]
    assert f"\n{heading}\n" in text, f"the README has no heading {heading!r}"
    body = text.split(f"\n{heading}\n", 1)[1]
    ends = [m.start() for m in re.finditer(r"^(#+) ", body, re.MULTILINE) if len(m.group(1)) <= len(level)]
    return body[: ends[0]] if ends else body


def readme_cli_examples() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", readme_section("### The sandbox"), re.DOTALL)
    assert block, "the sandbox section shows its day in a sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readmes_day_covers_every_operator_command() -> None:
    """Issue 29: the walkthrough shows hosts, revoke and policy too, not only status and rotate."""
    commands = {line.split()[1] for line in readme_cli_examples() if line.startswith("certrotate ")}
    commands |= {line.split()[3] for line in readme_cli_examples() if line.startswith("certrotate --output ")}
    expected = {"create-secret", "status", "rotate", "deploy", "hosts", "revoke", "policy", "validate", "doctor"}
    assert expected <= commands, expected - commands


def run_readme_block(lines: list[str], directory: Path) -> subprocess.CompletedProcess[str]:
    """``lines`` as one bash script in ``directory``, each line required to succeed (``set -e``: the
    first that fails stops it); the sandbox it started is stopped even then."""
    from tests.support.cli import shell_env

    (directory / "block.sh").write_text("\n".join(lines) + "\n")
    env = shell_env()
    wrapper = 'trap \'[ -n "${CERTROTATE_SANDBOX_PID:-}" ] && kill "$CERTROTATE_SANDBOX_PID" 2>/dev/null\' EXIT\n'
    wrapper += "set -ex\n. ./block.sh\n"
    return subprocess.run(
        ["bash", "-c", wrapper], cwd=directory, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def assert_sandbox_stopped(result: subprocess.CompletedProcess[str]) -> None:
    """The block's last line stopped the sandbox: nothing is left running."""
    pid = int(re.findall(r"CERTROTATE_SANDBOX_PID=(\d+)", result.stderr)[-1])
    for _ in range(300):  # 30 s: stopping moto's server on a loaded machine takes a while
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the sandbox (pid {pid}) is still running")


@pytest.mark.slow
def test_the_readmes_day_runs_as_written_against_the_sandbox(tmp_path: Path) -> None:
    """The README's "A day with certrotate" block, as one shell script: it starts the sandbox itself."""
    examples = readme_cli_examples()
    assert len(examples) >= 10
    assert examples[0] == 'eval "$(certrotate sandbox --detach --ledger)"'
    result = run_readme_block(examples, tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "PRIVATE KEY" not in result.stdout + result.stderr
    assert "payments/web" in result.stdout
    assert_sandbox_stopped(result)


@pytest.mark.slow
def test_the_readmes_ca_rollover_runs_as_written_against_the_sandbox_and_moves_its_hosts(tmp_path: Path) -> None:
    """Issue 27: the README's "Try a CA rollover in the sandbox" block, as one shell script: the
    sandbox's managed nodes (real local servers) install the first leaf and the bundle, the rollover
    goes through every phase, and at the end both nodes report the bundle of the new CA only."""
    from rotation.cli.sandbox_hosts import SandboxHostsError, choose_server

    try:
        choose_server()
    except SandboxHostsError as exc:  # the real servers are required in CI (.ci/run installs them)
        if os.environ.get("CI"):
            pytest.fail(f"required for this test in CI: {exc}")
        pytest.skip(str(exc))
    block = re.search(r"```sh\n(.*?)```", readme_section("#### Try a CA rollover in the sandbox"), re.DOTALL)
    assert block, "the rollover section shows its commands in a sh block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert (
        lines[0] == 'eval "$(certrotate sandbox --detach --hosts 2)"' and lines[-1] == 'kill "$CERTROTATE_SANDBOX_PID"'
    )
    assert len(lines) <= 16, "a few commands"
    result = run_readme_block(lines, tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "PRIVATE KEY" not in result.stdout + result.stderr
    recorded = re.findall(r"^root-2027: (\w+) -> (\w+) recorded in ", result.stderr, re.MULTILINE)
    assert recorded == [("planned", "add"), ("add", "prove"), ("prove", "move"), ("move", "retire"), ("retire", "done")]
    status = result.stdout.rsplit("rollover root-2027: ", 1)[1]  # the block's last status
    assert "phase: done " in status and "hosts: 2 on the bundles' current fingerprint, 0 lagging" in status
    assert "leaves: 1/1 secret(s) naming the old CA hold a new-CA leaf" in status
    first = re.findall(r"lagging: \S+/i-0+1 \(sandbox\): reports ([0-9a-f]{16}) ", result.stdout)[0]  # the old CA
    final = re.findall(r"bundle sandbox: holds new CA; fingerprint ([0-9a-f]{16})", status)
    assert final and final[0] != first
    reported = dict(re.findall(r"(i-0+[12])\s*\W\s*sandbox\s*\W\s*([0-9a-f]{16})\s*\W\s*installed", result.stdout))
    assert reported == {"i-00000000000000001": final[0], "i-00000000000000002": final[0]}
    assert re.search(r"sandbox/web: current serial [0-9A-F]+; 2 current, 0 older, 0 failed", result.stdout)
    assert_sandbox_stopped(result)
    # The nodes stopped with it: no server process runs from their directory, which is gone.
    nodes = set(re.findall(r"(/\S*certrotate-sandbox-hosts-[^/\s]+)/host-", result.stdout))
    assert len(nodes) == 1
    directory = nodes.pop()
    assert not Path(directory).exists()
    running = [p for p in Path("/proc").glob("[0-9]*/cmdline") if directory in _read(p)]
    assert running == []


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:  # the process ended meanwhile
        return ""


# -- issue 29: the README's map and its single statements ------------------------------------------

PATH_TOKEN = re.compile(r"`([\w./-]+(?:\.py|\.yaml|\.md|/))`")


def test_every_path_the_readmes_map_names_exists_and_every_package_is_in_it() -> None:
    """Each module or folder the architecture map names is there, and no package is missing from it."""
    section = readme_section("## Architecture")
    named: set[Path] = set()
    package = ROOT
    for line in section.splitlines():
        heading = re.match(r"### `([\w./-]+/)`", line)
        if heading:
            package = ROOT / heading.group(1)
            named.add(package)
        elif line.startswith("### "):
            package = ROOT
        for token in PATH_TOKEN.findall(line):
            path = ROOT / token if "/" in token.rstrip("/") or token.endswith("/") else package / token
            assert path.exists(), f"the README's map names {token}, which is not at {path.relative_to(ROOT)}"
            named.add(path)
    packages = {
        init.parent
        for top in (ROOT / "rotation", ROOT / "ssm_documents" / "certrotate_installer")
        for init in top.rglob("__init__.py")
    }
    missing = sorted(str(p.relative_to(ROOT)) for p in packages - named)
    assert not missing, f"packages the README's map does not name: {missing}"
    for folder in ("unit", "functional", "integration", "installer", "deployment", "support", "fixtures"):
        assert ROOT / "tests" / folder in named, f"the map of tests/ leaves out tests/{folder}/"


def test_the_readme_states_the_installers_exit_codes_once_and_all_of_them() -> None:
    """One table, every code the installer can exit with (``output.Exit``), each with its meaning."""
    from certrotate_installer.output import Exit  # ssm_documents/ is on the tests' path, as in tests/installer

    text = (ROOT / "README.md").read_text()
    assert text.count("| installer exit | meaning |") == 1
    table = text[text.index("| installer exit | meaning |") :].split("\n\n")[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", table, re.MULTILINE))
    assert {int(code) for code in rows} == {code.value for code in Exit}
    assert "Exit codes: 0 installed" not in text  # the old prose list, stale twice before


MODULE_LINE_LIMIT = 400


def test_no_module_is_over_400_lines() -> None:
    """A module over 400 lines usually hides lists that must be edited together: split it by job (issue 26).
    The Lambda's package and the host installer alike."""
    lengths = {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for top in (ROOT / "rotation", ROOT / "ssm_documents" / "certrotate_installer")
        for path in sorted(top.rglob("*.py"))
    }
    assert len(lengths) > 100  # both packages were read
    too_long = {path: n for path, n in lengths.items() if n > MODULE_LINE_LIMIT}
    assert not too_long, f"over {MODULE_LINE_LIMIT} lines, split by job: {too_long}"


#: The floors of rotation/, top first: a module imports only from its own floor or a lower one.
#: Entry points and tools (the Lambda handlers, the CLI, the build, the emulation) sit on top; a
#: rotation's steps (lifecycle) drive issuance, which records into the fleet's ledger; everything
#: stands on the base of AWS calls, errors, metrics, redaction and throttling.
FLOORS: tuple[frozenset[str], ...] = (
    frozenset({"handler", "console", "cli", "event_handlers", "build", "emulation", "rollover"}),
    frozenset({"lifecycle"}),
    frozenset({"issuance"}),
    frozenset({"fleet"}),
    frozenset({"aws", "errors", "telemetry", "redaction", "throttling", "__init__"}),
)


def rotation_imports() -> dict[str, set[str]]:
    """Every module of rotation/ and the modules of rotation/ it imports, at module level or inside a function."""
    files = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in sorted((ROOT / "rotation").rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                base = ".".join([*anchor, *([node.module] if node.module else [])])
                for alias in node.names:  # ``from rotation.cli import options`` imports the module rotation.cli.options
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def floor_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, floor in enumerate(FLOORS) if part in floor)


def test_rotation_imports_have_no_cycle_and_go_only_down_the_floors() -> None:
    graph = rotation_imports()
    assert "rotation.cli.demo" in graph["rotation.cli"], "the graph must see imports made inside functions"
    assert {m.split(".")[1] for m in graph if "." in m} <= set().union(*FLOORS), "a new package needs its floor"
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if floor_of(b) < floor_of(a))
    assert upward == [], "imports from a lower floor up to a higher one"

    cycles: list[list[str]] = []  # Tarjan's strongly connected components of more than one module
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = [stack.pop()]
            while component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert cycles == [], "modules that import each other (directly or round a longer loop)"

"""Run an SSM Command document on this machine, checking parameters exactly as SSM does.

moto records SendCommand but runs nothing. This runner takes a schemaVersion 2.2 document, checks
the given parameters the way SSM does before it sends anything to an instance (unknown names,
missing required values, type, allowedValues, allowedPattern), fills in defaults, compiles every
parameter's allowedPattern with Go's semantics whatever the value, as SSM Agent does
(``allowed_pattern.py`` says how and cites the agent), and runs each
``aws:runShellScript`` step with ``sh`` (as the SSM Agent does), in order, stopping at the first
failing step, and reports each step's exit code and output.

Parameters reach a step as the agent passes them: every ``{{ Name }}`` in the commands is replaced
by the value, and a parameter with ``interpolationType: ENV_VAR`` is also exported as
``SSM_<Name>`` (SSM Agent 3.3.2746.0 and later). ``env_var_interpolation=False`` runs a document
as an older agent does, which knows no ENV_VAR and only substitutes text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rotation.emulation.allowed_pattern import PatternError, accepts, compile_pattern
from rotation.errors import CertRotateError

_SH = shutil.which("sh") or "/bin/sh"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


class DocumentParameterError(CertRotateError):
    """A parameter SSM would refuse (InvalidParameters) before the command runs."""


@dataclass(frozen=True)
class StepResult:
    name: str
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class CommandResult:
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.exit_code == 0 for s in self.steps)

    @property
    def stdout(self) -> str:
        return "".join(s.stdout for s in self.steps)

    @property
    def stderr(self) -> str:
        return "".join(s.stderr for s in self.steps)


def load_document(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or document.get("schemaVersion") != "2.2":
        raise DocumentParameterError(f"{path.name}: not a schemaVersion 2.2 Command document")
    return document


INTERPOLATION_TYPES = ("ENV_VAR",)


def resolve_parameters(document: Mapping[str, Any], given: Mapping[str, str | list[str]]) -> dict[str, str]:
    """The parameter values SSM would run the document with.

    Raises:
        DocumentParameterError: a value SSM refuses, naming the parameter and the rule.
    """
    declared: dict[str, Any] = document.get("parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise DocumentParameterError(
            f"unknown parameter(s) {', '.join(unknown)}; the document declares {', '.join(declared)}"
        )
    compiled = _compiled_patterns(declared)
    resolved: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            value: Any = given[name]
        elif "default" in spec:
            value = spec["default"]
        else:
            raise DocumentParameterError(f"parameter {name} is required")
        interpolation = spec.get("interpolationType")
        if interpolation is not None and interpolation not in INTERPOLATION_TYPES:
            raise DocumentParameterError(
                f"parameter {name}: interpolationType {interpolation!r} is not one of {', '.join(INTERPOLATION_TYPES)}"
            )
        kind = spec.get("type", "String")
        values = value if kind == "StringList" else [value]
        if kind == "StringList" and not isinstance(value, list):
            raise DocumentParameterError(f"parameter {name} must be a list of strings (StringList)")
        for item in values:
            if not isinstance(item, str):
                raise DocumentParameterError(f"parameter {name} must be a string ({kind})")
            allowed = spec.get("allowedValues")
            if allowed is not None and item not in allowed:
                raise DocumentParameterError(f"parameter {name} value {item!r} is not one of {', '.join(allowed)}")
            # The API matches the whole value (so a trailing newline fails too), the agent searches
            # with Go's regexp: a value must pass both.
            if name in compiled and not accepts(compiled[name], item):
                raise DocumentParameterError(f"parameter {name} value {item!r} does not match {spec['allowedPattern']}")
        resolved[name] = ",".join(values) if kind == "StringList" else values[0]
    return resolved


def _compiled_patterns(declared: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared allowedPattern compiled as SSM Agent compiles them: all of them, whatever the
    values, every failure named at once (the agent joins its validators' errors).

    Raises:
        DocumentParameterError: a pattern Go's regexp refuses; the command would fail on every instance.
    """
    compiled: dict[str, Any] = {}
    failures: list[str] = []
    for name, spec in declared.items():
        pattern = spec.get("allowedPattern")
        if not pattern:  # the agent skips an empty pattern
            continue
        try:
            compiled[name] = compile_pattern(pattern)
        except PatternError as exc:
            failures.append(f"parameter {name}: {exc}")
    if failures:
        raise DocumentParameterError("; ".join(failures))
    return compiled


def substitute(command: str, parameters: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in parameters:
            raise DocumentParameterError(f"the document refers to undeclared parameter {name}")
        return parameters[name]

    return _PLACEHOLDER.sub(replace, command)


def environment_variables(document: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, str]:
    """``SSM_<Name>`` for each ENV_VAR parameter, as the SSM Agent sets them."""
    declared: dict[str, Any] = document.get("parameters") or {}
    return {
        f"SSM_{name}": values[name] for name, spec in declared.items() if spec.get("interpolationType") == "ENV_VAR"
    }


def run_document(
    path: Path,
    parameters: Mapping[str, str | list[str]],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    env_var_interpolation: bool = True,
    instance_id: str | None = None,
    region: str = "us-east-1",
) -> CommandResult:
    """Check the parameters, then run every ``aws:runShellScript`` step with sh.

    With ``instance_id``, the steps see ``AWS_SSM_INSTANCE_ID`` and ``AWS_SSM_REGION_NAME`` as
    the SSM agent sets them for every command it runs (amazon-ssm-agent's executers package).

    Raises:
        DocumentParameterError: SSM would refuse the parameters; nothing ran.
    """
    return run_parsed_document(
        load_document(path),
        parameters,
        env=env,
        timeout=timeout,
        env_var_interpolation=env_var_interpolation,
        instance_id=instance_id,
        region=region,
    )


def run_parsed_document(
    document: Mapping[str, Any],
    parameters: Mapping[str, str | list[str]],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    env_var_interpolation: bool = True,
    instance_id: str | None = None,
    region: str = "us-east-1",
) -> CommandResult:
    """:func:`run_document` for a document already parsed (State Manager reads it from moto's SSM).

    Raises:
        DocumentParameterError: SSM would refuse the parameters; nothing ran.
    """
    import time

    values = resolve_parameters(document, parameters)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SSM_")}
    agent_env = environment_variables(document, values) if env_var_interpolation else {}
    if instance_id is not None:
        agent_env.update(AWS_SSM_INSTANCE_ID=instance_id, AWS_SSM_REGION_NAME=region)
    result = CommandResult()
    started = time.monotonic()
    for step in document.get("mainSteps", []):
        if step.get("action") != "aws:runShellScript":
            raise DocumentParameterError(f"step {step.get('name')}: only aws:runShellScript runs locally")
        commands = step["inputs"]["runCommand"]
        script = "\n".join(substitute(line, values) for line in commands) + "\n"
        with tempfile.TemporaryDirectory(prefix="certrotate-ssm-") as directory:
            script_path = Path(directory) / "_script.sh"
            script_path.write_text(script)
            completed = subprocess.run(  # noqa: S603 - the document's own script, parameters checked above
                [_SH, str(script_path)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**inherited, **(env or {}), **agent_env},
                check=False,
            )
        result.steps.append(StepResult(step["name"], completed.returncode, completed.stdout, completed.stderr))
        if completed.returncode != 0:
            break
    result.seconds = time.monotonic() - started
    return result


def run_association(
    path: Path,
    parameters: Mapping[str, str | list[str]],
    targets: Mapping[str, Mapping[str, str]],
    *,
    region: str = "us-east-1",
    timeout: float = 600,
) -> dict[str, CommandResult]:
    """One State Manager association pass: the document on every target instance that is up.

    ``targets`` maps an instance id to the environment its agent runs commands in (the host's own
    variables: its installer host file, its aws CLI); a stopped instance is not a target until it
    is back. Instances run one after another (MaxConcurrency 1); each result is keyed by instance
    id. Each call is one scheduled (or StartAssociationsOnce) run, called by the test itself;
    ``association_api`` emulates State Manager whole (associations, targets by tag, schedules,
    MaxConcurrency and MaxErrors) for tests that go through the SSM API.
    """
    results: dict[str, CommandResult] = {}
    for instance_id, env in targets.items():
        results[instance_id] = run_document(
            path, parameters, env=env, timeout=timeout, instance_id=instance_id, region=region
        )
    return results

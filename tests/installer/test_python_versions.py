"""The installer runs on the python3 the target distributions ship: 3.6 (RHEL 8's platform-python)
and later, standard library only. vermin reads the minimum version off every module of the package
and off the built program; where older interpreters are installed (pyenv), the built program's
own checks run on each of them too."""

from __future__ import annotations

import ast
import glob
import subprocess
import sys
from pathlib import Path

import pytest

from rotation.build.installer import PACKAGE_DIR, module_files
from tests.installer.helpers import write_program
from tests.support.certs import LocalCA

VERMIN = (
    str(Path(sys.executable).with_name("vermin")) if Path(sys.executable).with_name("vermin").exists() else "vermin"
)
OLD_PYTHONS = sorted(glob.glob("/root/.pyenv/versions/3.[6-9].*/bin/python3") + glob.glob("/usr/bin/python3.[6-9]"))


def test_vermin_finds_nothing_newer_than_3_6(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("vermin")),
            "-t=3.6-",
            "--no-tips",
            "--violations",
            "--eval-annotations",
            str(PACKAGE_DIR),
            str(write_program(tmp_path)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", [name for name, _ in module_files()])
def test_only_the_standard_library_is_imported(module: str) -> None:
    """Every module imports the standard library and its own package (relative imports) only."""
    tree = ast.parse(dict(module_files())[module].read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    assert "__future__" not in imported  # `from __future__ import annotations` is 3.7+


CHECK = """
import importlib.util, json, sys, time
spec = importlib.util.spec_from_file_location("installer", sys.argv[1])
program = importlib.util.module_from_spec(spec)
spec.loader.exec_module(program)
program.install_finder()
from certrotate_installer import output, validation
cert, key, chain, other_key = json.loads(sys.stdin.read())
bundle = validation.parse_bundle(cert, key, chain, ("c", "k", "ch"))
validation.validate_bundle(bundle, time.time())
bad = validation.parse_bundle(cert, other_key, chain, ("c", "k", "ch"))
try:
    validation.validate_bundle(bad, time.time())
except output.InstallError as exc:
    print(bundle.facts.serial_hex, exc.message)
"""


@pytest.mark.parametrize("python", OLD_PYTHONS or ["none"])
def test_the_bundle_checks_run_on_older_interpreters(python: str, tmp_path: Path) -> None:
    if python == "none":
        pytest.skip("no Python 3.6-3.9 interpreter on this machine (vermin still checks the source)")
    import json

    ca = LocalCA(name="Old Python CA")
    bundle, other = ca.issue(["a.test"]), ca.issue(["a.test"])
    stdin = json.dumps([bundle.certificate_pem, bundle.private_key_pem, bundle.chain_pem, other.private_key_pem])
    result = subprocess.run(
        [python, "-I", "-c", CHECK, str(write_program(tmp_path))],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{bundle.serial_hex} the private key does not match the certificate\n"

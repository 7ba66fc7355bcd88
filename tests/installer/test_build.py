"""The installer package and the one program built from it (rotation/build/installer.py).

The program is what the documents embed: deterministic (the same bytes on every build), every
module less its comments (the same lines and syntax tree), served to ``import`` by its own finder,
tracebacks naming the module file; and no module of the package is longer than one sitting's
reading (400 lines, issue 20).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rotation.build.installer import PACKAGE_DIR, build, embedded_modules, module_files
from tests.installer.helpers import write_program

MAX_MODULE_LINES = 400


def test_the_build_is_deterministic_and_holds_every_module_in_name_order() -> None:
    first, second = build(), build()
    assert first.encode() == second.encode()
    names = [name for name, _ in module_files()]
    assert (
        names == sorted(names) and "certrotate_installer.main" in names and "certrotate_installer.servers.base" in names
    )
    assert list(embedded_modules(first)) == names
    assert str(PACKAGE_DIR) not in first and "/work/" not in first  # no absolute path of the build machine


@pytest.mark.parametrize(("name", "path"), module_files(), ids=[name for name, _ in module_files()])
def test_no_module_is_over_400_lines(name: str, path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines (at most {MAX_MODULE_LINES})"


def test_the_program_runs_from_stdin_and_imports_nothing_from_disk(tmp_path: Path) -> None:
    """As the launcher runs it: ``python3 -I`` reading the program on stdin, in a directory with no
    package; a bad parameter is refused (exit 2) before anything is touched."""
    result = subprocess.run(
        [sys.executable, "-I", "-", "install"],
        input=build(),
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "SSM_SecretArn": "not-an-arn"},
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "parameter SecretArn has a value that is not allowed: 'not-an-arn'" in result.stderr
    assert list(tmp_path.iterdir()) == []


TRACE = """
import importlib.util, sys, traceback
spec = importlib.util.spec_from_file_location("installer", sys.argv[1])
program = importlib.util.module_from_spec(spec)
spec.loader.exec_module(program)
program.install_finder()
from certrotate_installer import certificate
print(certificate.__spec__.origin)
try:
    certificate.pem_blocks(None, "field")
except TypeError:
    traceback.print_exc(file=sys.stdout)
"""


def test_a_traceback_names_the_module_file_and_shows_its_line(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    program = write_program(tmp_path / "elsewhere")  # not the working directory: nothing to import from
    result = subprocess.run(
        [sys.executable, "-I", "-c", TRACE, str(program)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    origin, *trace = result.stdout.splitlines()
    assert origin == "certrotate_installer/certificate.py"
    frame = next(i for i, line in enumerate(trace) if 'File "certrotate_installer/certificate.py"' in line)
    assert "in pem_blocks" in trace[frame] and trace[frame + 1].strip().startswith("for match in _PEM_BLOCK")

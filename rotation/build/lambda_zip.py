"""Build the Lambda zip for arm64 or x86_64, reproducibly.

Binary wheels for the target platform (``pip install --platform manylinux2014_<arch>
--only-binary=:all: --target``), pinned to the versions installed here, plus the modules the
Lambda functions import (not the CLI, the emulation or the build steps). boto3 comes with the
Lambda runtime. Entries are sorted and stamped with a fixed time, so the same inputs give the
same bytes.

Bytecode ships in the zip: ``/var/task`` is read-only, so without it every cold start compiles
certrotate's, cryptography's and Powertools' sources again (about 100 ms of a cold start). It is
compiled by an interpreter of the target version (``sys.executable`` if it is one, else
``python3.12`` on ``PATH`` or under pyenv, or the one given) as unchecked-hash ``.pyc`` files
(PEP 552: the zip is immutable, so the source is never re-read to check them), compiled under the
names Lambda unpacks them to (``/var/task/...``, not the build's temporary directory), so the same
inputs and interpreter give the same bytes. Without such
an interpreter the zip carries sources only and ``BuiltZip.bytecode`` is ``None`` (the CLI says so).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from rotation.errors import CertRotateError

PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
RUNTIME_DEPENDENCIES = ("cryptography", "aws-lambda-powertools")
PACKAGE = Path(__file__).resolve().parents[1]
LEFT_OUT = {"cli", "emulation", "build"}  # not imported by any Lambda function
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
TASK_ROOT = "/var/task"  # where Lambda unpacks the zip: the file names compiled into the bytecode
COMPILE = """
import compileall, py_compile, sys
ok = compileall.compile_dir(
    sys.argv[1], quiet=1, stripdir=sys.argv[1], prependdir=sys.argv[2], workers=1,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
sys.exit(0 if ok else 1)
"""


class PackagingError(CertRotateError):
    """pip could not fetch wheels for the target platform."""


@dataclass(frozen=True)
class BuiltZip:
    path: Path
    size: int
    sha256: str
    #: The interpreter version that compiled the zip's bytecode (``"3.12.1"``); ``None``: sources only.
    bytecode: str | None = None


def build(
    architecture: str,
    python_version: str,
    output_dir: Path,
    *,
    compile_with: str | None = None,
    bytecode: bool = True,
) -> BuiltZip:
    """Build ``certrotate-lambda-<arch>.zip`` in ``output_dir``.

    ``compile_with``: the interpreter that compiles the bytecode (it must be ``python_version``);
    by default one is looked for (:func:`find_compiler`), and without one the zip has no bytecode.
    ``bytecode=False``: sources only (the benchmark's comparison with a zip as it was).

    Raises:
        PackagingError: wheels for the platform could not be installed, ``compile_with`` is not
            an interpreter of ``python_version``, or a source did not compile.
    """
    if architecture not in PLATFORMS:
        raise PackagingError(f"architecture {architecture!r}: allowed {', '.join(PLATFORMS)}")
    compiler = _checked_compiler(compile_with, python_version) if compile_with else find_compiler(python_version)
    compiler = compiler if bytecode else None
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"certrotate-lambda-{architecture}.zip"
    with tempfile.TemporaryDirectory(prefix="certrotate-build-") as directory:
        staging = Path(directory)
        requirements = [f"{name}=={version(name)}" for name in RUNTIME_DEPENDENCIES]
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(staging),
            "--platform",
            PLATFORMS[architecture],
            "--implementation",
            "cp",
            "--python-version",
            python_version,
            "--only-binary=:all:",
            "--no-compile",
            *requirements,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PackagingError(
                f"pip could not install {', '.join(requirements)} for {PLATFORMS[architecture]}: "
                f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no output'}"
            )
        files = {_relative(path, staging): path for path in staging.rglob("*") if path.is_file()}
        files = {name: path for name, path in files.items() if "__pycache__" not in name}
        for path in PACKAGE.rglob("*.py"):
            parts = path.relative_to(PACKAGE).parts
            if parts[0] not in LEFT_OUT and "__pycache__" not in parts:
                copy = staging / _relative(path, PACKAGE.parent)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)
                files[_relative(copy, staging)] = copy
        if compiler is not None:
            files.update(_compile(compiler[0], staging))
        _write_zip(target, files)
    data = target.read_bytes()
    return BuiltZip(target, len(data), hashlib.sha256(data).hexdigest(), compiler[1] if compiler else None)


def find_compiler(python_version: str) -> tuple[str, str] | None:
    """An interpreter of ``python_version`` here, and its full version: this one, else on PATH or pyenv's."""
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = [sys.executable, shutil.which(f"python{python_version}") or ""]
    candidates += sorted(glob.glob(os.path.join(pyenv, "versions", f"{python_version}.*", "bin", "python3")))
    for candidate in filter(None, candidates):
        found = _version_of(candidate)
        if found is not None and found.rsplit(".", 1)[0] == python_version:
            return candidate, found
    return None


def _checked_compiler(interpreter: str, python_version: str) -> tuple[str, str]:
    found = _version_of(interpreter)
    if found is None or found.rsplit(".", 1)[0] != python_version:
        raise PackagingError(
            f"compile_with {interpreter!r}: it is Python {found or '(did not run)'}; the bytecode must be "
            f"compiled by Python {python_version}, the Lambda runtime's"
        )
    return interpreter, found


def _version_of(interpreter: str) -> str | None:
    probe = "import platform; print(platform.python_version())"
    try:
        result = subprocess.run([interpreter, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _compile(interpreter: str, staging: Path) -> dict[str, Path]:
    """Compile every source under ``staging`` as ``/var/task/...`` (unchecked-hash ``.pyc``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [interpreter, "-I", "-c", COMPILE, str(staging), TASK_ROOT],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise PackagingError(f"{interpreter} could not compile the zip's sources: {result.stdout.strip()[-2000:]}")
    return {_relative(path, staging): path for path in staging.rglob("__pycache__/*.pyc")}


def _relative(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def _write_zip(target: Path, files: dict[str, Path]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if os.access(files[name], os.X_OK) and name.endswith(".so") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, files[name].read_bytes())

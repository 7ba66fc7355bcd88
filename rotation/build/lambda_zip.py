"""Build the Lambda zip for arm64 or x86_64, reproducibly.

Binary wheels for the target platform (``pip install --platform manylinux2014_<arch>
--only-binary=:all: --target``), pinned to the versions installed here, plus the modules the
Lambda functions import (not the CLI, the emulation or the build steps). boto3 comes with the
Lambda runtime. Entries are sorted and stamped with a fixed time, so the same inputs give the
same bytes.
"""

from __future__ import annotations

import hashlib
import os
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


class PackagingError(CertRotateError):
    """pip could not fetch wheels for the target platform."""


@dataclass(frozen=True)
class BuiltZip:
    path: Path
    size: int
    sha256: str


def build(architecture: str, python_version: str, output_dir: Path) -> BuiltZip:
    """Build ``certrotate-lambda-<arch>.zip`` in ``output_dir``.

    Raises:
        PackagingError: wheels for the platform could not be installed.
    """
    if architecture not in PLATFORMS:
        raise PackagingError(f"architecture {architecture!r}: allowed {', '.join(PLATFORMS)}")
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
                files[_relative(path, PACKAGE.parent)] = path
        _write_zip(target, files)
    data = target.read_bytes()
    return BuiltZip(target, len(data), hashlib.sha256(data).hexdigest())


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

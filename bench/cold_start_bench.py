"""Benchmark: a Lambda container's full cold path, certrotate against the original sample.

Run from the repository root:  python bench/cold_start_bench.py [--runs 21] [--instructions 3]
[--ledger] [--no-bytecode] [--profile]

The cold path is everything a fresh container does for its first invocation, a Private CA
createSecret: the imports (botocore, cryptography, Powertools, certrotate), the clients, and the
step itself with its AWS calls. It is measured the way Lambda runs the code:

- the Lambda zip is built (``rotation.build.lambda_zip``, this machine's architecture, bytecode
  compiled by Python 3.12, the templates' runtime) and unpacked into a temporary ``task`` directory;
- the runtime's own packages (boto3, botocore and their dependencies, which Lambda provides and the
  zip leaves out) are copied from this environment into a ``runtime`` directory and compiled by
  the same interpreter, as the runtime ships them;
- the original sample (re-implemented in ``bench/original_sample_equivalent.py``: none of its
  code is used) gets its own task directory with the same third-party packages from the same zip
  (cryptography with the same bytecode), its module compiled the same way; its Lambda imports
  boto3, the module, and makes its two clients (Secrets Manager, Private CA) at module level;
- each sample is a fresh Python 3.12 interpreter run with ``-S -s -B`` and a clean environment:
  no site-packages (the development venv cannot shadow anything), ``sys.path`` = task, runtime,
  stdlib, as in Lambda, and no bytecode written (``/var/task`` is read-only);
- both run the same step against one moto server (``ThreadedMotoServer`` in this process, reached
  through ``AWS_ENDPOINT_URL``) with equal work: a secret that was rotated once, whose RSA-2048 key
  is kept (``REUSE_PRIVATE_KEY=true`` for certrotate, what the original always does), loaded and
  checked by both, CSR, IssueCertificate, GetCertificate, PutSecretValue; a new AWSPENDING version
  is staged before every sample. certrotate runs without an issuance ledger (the original keeps
  none); ``--ledger`` gives it one, as the central template does (a DynamoDB client and PutItem).

Figures are CPU milliseconds of the child interpreter (``time.process_time``, all its threads;
waits on moto's answers are not counted, so the server's work is left out), from just before the
first import: "first call" is taken at the first ``socket.connect`` (an audit hook), "step" when
the step returns. The interpreter's own start-up is excluded (both pay it). Samples alternate
(original, certrotate, swapped every round) and the median with the interquartile range is
printed. ``--instructions N`` also counts instructions of N samples each under
``valgrind --tool=callgrind`` (hash seed fixed; minus an empty interpreter's count), a figure the
neighbours on a shared machine cannot move. ``--no-bytecode``: both task directories without
bytecode (the zip as it was before it shipped any). ``--profile``: instead of timing, ``-X
importtime`` of ``--runs`` cold paths each (own import time by package, and the modules only one
contender imports).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUNTIME_PYTHON = "3.12"
#: What the Lambda runtime provides beside the standard library (and the zip leaves out).
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six")
#: The zip's packages that only certrotate imports (left out of the original's task directory).
CERTROTATE_ONLY = ("rotation", "aws_lambda_powertools")

CHILD = r"""
import sys, time, json
task, runtime, who, event = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path[:0] = [task, runtime]
marks = {}

def first_call(name, args):
    if name == "socket.connect" and not marks:
        marks["first_call"] = time.process_time()

sys.addaudithook(first_call)

class Context:
    function_name = "certrotate-rotation"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:certrotate-rotation"
    aws_request_id = "6f8f3a0e-0000-4000-8000-000000000000"
    def get_remaining_time_in_millis(self):
        return 300000

import os
t0 = os.times()
start = time.process_time()
if who == "certrotate":
    import rotation.handler
    rotation.handler.lambda_handler(event, Context())
else:
    import boto3
    import original_sample_equivalent
    sm = boto3.client("secretsmanager")
    pca = boto3.client("acm-pca")
    original_sample_equivalent.handle(event, sm, pca)
end = time.process_time()
t1 = os.times()
figures = {"first_call": (marks["first_call"] - start) * 1000, "step": (end - start) * 1000}
figures.update(user=(t1.user - t0.user) * 1000, system=(t1.system - t0.system) * 1000)
print(json.dumps(figures))
"""
EMPTY_CHILD = r"""
import sys, time, json
task, runtime, who, event = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path[:0] = [task, runtime]
"""
WHO = ("original", "certrotate")


def runtime_python() -> str:
    from rotation.build.lambda_zip import find_compiler

    found = find_compiler(RUNTIME_PYTHON)
    if found is None:
        sys.exit(f"no Python {RUNTIME_PYTHON} here (the Lambda runtime's): install it (pyenv install 3.12)")
    return found[0]


def prepare(work: Path, python: str, *, bytecode: bool = True) -> dict[str, Path]:
    """The task directories of both contenders and the runtime directory; returns them by name."""
    from rotation.build.lambda_zip import build

    architecture = {"x86_64": "x86_64", "aarch64": "arm64"}[platform.machine()]
    built = build(architecture, RUNTIME_PYTHON, work / "dist", compile_with=python, bytecode=bytecode)
    dirs = {"certrotate": work / "task", "original": work / "original", "runtime": work / "runtime"}
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(dirs["certrotate"])
    shutil.copytree(
        dirs["certrotate"],
        dirs["original"],
        ignore=lambda d, names: [n for n in names if n.startswith(CERTROTATE_ONLY)],
    )
    shutil.copyfile(
        ROOT / "bench" / "original_sample_equivalent.py", dirs["original"] / "original_sample_equivalent.py"
    )
    for name in RUNTIME_DISTRIBUTIONS:
        dist = distribution(name)
        for file in dist.files or ():
            if "__pycache__" not in file.parts and ".." not in file.parts:
                target = dirs["runtime"] / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(str(dist.locate_file(file))), target)
    compile_all = [python, "-I", "-m", "compileall", "-q"]
    subprocess.run([*compile_all, str(dirs["runtime"])], check=True, stdout=subprocess.DEVNULL)
    if bytecode:
        sample = str(dirs["original"] / "original_sample_equivalent.py")
        subprocess.run(
            [*compile_all, "--invalidation-mode", "unchecked-hash", sample], check=True, stdout=subprocess.DEVNULL
        )
    print(f"zip: {built.size / 1e6:.1f} MB, bytecode by Python {built.bytecode}")
    return dirs


class Moto:
    """moto's server in this process, a Private CA, and one secret per contender rotated once."""

    def __init__(self, home: Path, *, ledger: bool = False) -> None:
        import logging

        import boto3
        from moto.server import ThreadedMotoServer

        from rotation.cli.local_apache import free_port
        from rotation.emulation.pki import cached_moto_ca_keys, create_ca

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),  # no ~/.aws: Lambda has none
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "POWERTOOLS_SERVICE_NAME": "certrotate",  # as the templates set it
            "AWS_LAMBDA_FUNCTION_NAME": "certrotate-rotation",
        }
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("AWS_")})
        if ledger:  # as the central template configures the function: the issuance ledger in DynamoDB
            from rotation.fleet.ledger import LEDGER_TABLE_ENV, create_table

            create_table(boto3.client("dynamodb"), "certrotate-ledger")
            self.env[LEDGER_TABLE_ENV] = os.environ[LEDGER_TABLE_ENV] = "certrotate-ledger"
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        self._keys = cached_moto_ca_keys()  # moto's CA re-decrypting its key is not the contenders' work
        self._keys.__enter__()
        self.sm = boto3.client("secretsmanager")
        ca = create_ca(boto3.client("acm-pca"))
        spec = {"CA_ARN": ca, "COMMON_NAME": "cold.example.internal", "KEY_ALGORITHM": "RSA_2048"}
        self.arns = {
            "original": self.sm.create_secret(Name="cold/original", SecretString=json.dumps(spec))["ARN"],
            "certrotate": self.sm.create_secret(
                Name="cold/certrotate",
                SecretString=json.dumps({**spec, "CERTIFICATE_TYPE": "PCA_ISSUED", "REUSE_PRIVATE_KEY": "true"}),
            )["ARN"],
        }
        self._rotate_once()

    def _rotate_once(self) -> None:
        """The secrets' first rotation (key generated), so the measured one keeps a key as a schedule's does."""
        import boto3

        from bench import original_sample_equivalent
        from rotation.emulation.rotation_service import STEPS, rotate, rotation_event, stage_pending

        with contextlib.redirect_stdout(io.StringIO()):  # the handler's logs and metrics
            rotate(self.arns["certrotate"])
        token = stage_pending(self.arns["original"])
        for step in STEPS:
            event = rotation_event(step, self.arns["original"], token)
            original_sample_equivalent.handle(event, self.sm, boto3.client("acm-pca"))

    def event(self, who: str) -> dict[str, str]:
        from rotation.emulation.rotation_service import rotation_event, stage_pending

        return rotation_event("createSecret", self.arns[who], stage_pending(self.arns[who]))

    def stop(self) -> None:
        self._keys.__exit__(None, None, None)
        self.server.stop()


def run_child(
    python: str, dirs: dict[str, Path], who: str, event: dict[str, str], env: dict[str, str], *flags: str
) -> subprocess.CompletedProcess[str]:
    command = [python, "-S", "-s", "-B", *flags, "-c", CHILD, str(dirs[who]), str(dirs["runtime"]), who]
    result = subprocess.run([*command, json.dumps(event)], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        sys.exit(f"{who} failed:\n{result.stderr[-3000:]}")
    return result


def sample(
    python: str, dirs: dict[str, Path], who: str, event: dict[str, str], env: dict[str, str]
) -> dict[str, float]:
    figures: dict[str, float] = json.loads(run_child(python, dirs, who, event, env).stdout.strip().splitlines()[-1])
    return figures


def profile(python: str, dirs: dict[str, Path], moto: Moto, runs: int) -> None:
    """``-X importtime`` of ``runs`` cold paths each: own import ms by top-level package, and the
    modules only one contender loads (medians; the probe inflates every figure)."""
    own: dict[str, dict[str, list[float]]] = {who: {} for who in WHO}
    for _ in range(runs):
        for who in WHO:
            stderr = run_child(python, dirs, who, moto.event(who), moto.env, "-X", "importtime").stderr
            for line in stderr.splitlines():
                parts = line.removeprefix("import time:").split("|")
                if len(parts) == 3 and parts[0].strip().isdigit():
                    own[who].setdefault(parts[2].strip(), []).append(int(parts[0]) / 1000)
    medians = {who: {m: statistics.median(v) for m, v in own[who].items()} for who in WHO}

    def by_package(who: str, modules: set[str]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for module in modules:
            totals[module.split(".")[0]] = totals.get(module.split(".")[0], 0.0) + medians[who][module]
        return totals

    everything = {who: by_package(who, set(medians[who])) for who in WHO}
    print(f"own import ms by top-level package (-X importtime, median of {runs} cold paths): original / certrotate")
    names = sorted(
        set(everything["original"]) | set(everything["certrotate"]),
        key=lambda n: -max(everything[w].get(n, 0) for w in WHO),
    )
    for name in names[:20]:
        print(f"  {name:<28} {everything['original'].get(name, 0):7.1f} {everything['certrotate'].get(name, 0):7.1f}")
    print(f"  {'total':<28} {sum(everything['original'].values()):7.1f} {sum(everything['certrotate'].values()):7.1f}")
    for who, other in (WHO, WHO[::-1]):
        only = by_package(who, set(medians[who]) - set(medians[other]))
        listed = ", ".join(f"{n} {ms:.1f}" for n, ms in sorted(only.items(), key=lambda x: -x[1])[:15])
        print(f"only {who} imports ({sum(only.values()):.1f} ms): {listed}")
        modules = sorted(set(medians[who]) - set(medians[other]), key=lambda m: -medians[who][m])
        print("  by module: " + ", ".join(f"{m} {medians[who][m]:.1f}" for m in modules[:40]))


def instructions(
    python: str, dirs: dict[str, Path], who: str, code: str, event: dict[str, str], env: dict[str, str]
) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, "-S", "-s", "-B", "-c", code]
    command += [str(dirs[who]), str(dirs["runtime"]), who, json.dumps(event)]
    result = subprocess.run(command, capture_output=True, text=True, env={**env, "PYTHONHASHSEED": "0"}, check=False)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        sys.exit(f"valgrind on {who} failed:\n{result.stderr[-3000:]}")
    return int(found.group(1))


def spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4) if len(values) >= 4 else [min(values), 0, max(values)]
    return f"{statistics.median(values):7.1f} (IQR {q[0]:.1f} to {q[2]:.1f}, min {min(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="samples of each contender (21)")
    parser.add_argument("--instructions", type=int, default=0, help="also count instructions of N samples each")
    parser.add_argument("--profile", action="store_true", help="only print -X importtime's figures (--runs of each)")
    parser.add_argument(
        "--ledger", action="store_true", help="certrotate with the issuance ledger, as the central template sets it"
    )
    parser.add_argument(
        "--no-bytecode", action="store_true", help="both task directories without bytecode (the zip as it was)"
    )
    args = parser.parse_args()
    python = runtime_python()
    with tempfile.TemporaryDirectory(prefix="certrotate-cold-") as directory:
        work = Path(directory)
        (work / "home").mkdir()
        dirs = prepare(work, python, bytecode=not args.no_bytecode)
        moto = Moto(work / "home", ledger=args.ledger)
        try:
            if args.profile:
                profile(python, dirs, moto, args.runs)
                return
            loads = [os.getloadavg()[0]]
            samples: dict[str, list[dict[str, float]]] = {who: [] for who in WHO}
            for index in range(args.runs):
                for who in WHO if index % 2 == 0 else WHO[::-1]:
                    samples[who].append(sample(python, dirs, who, moto.event(who), moto.env))
                loads.append(os.getloadavg()[0])
            counted: dict[str, list[int]] = {who: [] for who in WHO}
            for index in range(args.instructions):
                for who in WHO if index % 2 == 0 else WHO[::-1]:
                    event = moto.event(who)
                    empty = instructions(python, dirs, who, EMPTY_CHILD, event, moto.env)
                    counted[who].append(instructions(python, dirs, who, CHILD, event, moto.env) - empty)
        finally:
            moto.stop()
    variant = " (no bytecode in either task directory)" if args.no_bytecode else ""
    variant += ", certrotate with the issuance ledger (DynamoDB)" if args.ledger else ""
    print(
        f"full cold path of a Private CA createSecret{variant}, Python {RUNTIME_PYTHON} ({python}), {args.runs} fresh "
        f"interpreters each, alternating; load average {min(loads):.1f} to {max(loads):.1f} "
        f"({os.cpu_count()} cores); CPU ms, median (interquartile range, min):"
    )
    for part in ("first_call", "step", "user", "system"):
        theirs = statistics.median(s[part] for s in samples["original"])
        ours = statistics.median(s[part] for s in samples["certrotate"])
        label = {
            "first_call": "to the first AWS call",
            "step": "whole first step",
            "user": "whole first step, user CPU only (os.times, 10 ms ticks)",
            "system": "whole first step, system CPU only (os.times, 10 ms ticks)",
        }[part]
        print(f"  {label}:")
        print(f"    original sample (re-implemented): {spread([s[part] for s in samples['original']])}")
        print(f"    certrotate:                       {spread([s[part] for s in samples['certrotate']])}")
        print(f"    ratio of medians: {ours / theirs:.3f}x")
    ratios = [c["step"] / o["step"] for o, c in zip(samples["original"], samples["certrotate"], strict=True)]
    print(f"  whole step, ratio within each round: median {statistics.median(ratios):.3f}x, spread {spread(ratios)}")
    if args.instructions:
        theirs_i, ours_i = (statistics.median(counted[w]) for w in WHO)
        print(f"  instructions (callgrind, median of {args.instructions}, an empty interpreter's subtracted):")
        print(f"    original sample: {theirs_i / 1e6:8.1f} M  {sorted(round(c / 1e6, 1) for c in counted['original'])}")
        print(f"    certrotate:      {ours_i / 1e6:8.1f} M  {sorted(round(c / 1e6, 1) for c in counted['certrotate'])}")
        print(f"    ratio: {ours_i / theirs_i:.3f}x")


if __name__ == "__main__":
    main()

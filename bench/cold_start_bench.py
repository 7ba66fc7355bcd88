"""Benchmark: the full cold path of a first invocation, certrotate against the original sample.

Run from the repository root:  python bench/cold_start_bench.py [--runs 15]

Each sample is a fresh interpreter (``python -c``; the interpreter's own start-up is excluded,
both sides pay it) that times everything a container does before its first AWS call of a Private
CA createSecret, in CPU time of that interpreter (``time.process_time``: imports and client
construction are CPU-bound, and on a shared machine wall time mostly measures the neighbours):

- certrotate: ``import rotation.handler`` (the Lambda's handler module), then what the first
  invocation imports and builds: the engine, the container's services and the clients that step
  uses (Secrets Manager, Private CA).
- the original sample, as its Lambda does it: ``import boto3`` and the sample's module
  (re-implemented in ``bench/original_sample_equivalent.py``: cryptography imports), and its two
  clients (Secrets Manager, Private CA) at module level.

The runs alternate between the two, and the median of each is reported with the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CERTROTATE = """
import time
t = time.process_time()
import rotation.handler
import rotation.engine
services = rotation.handler.services()
services.pca_for_region("us-east-1")
print((time.process_time() - t) * 1000)
"""

ORIGINAL = """
import time
t = time.process_time()
import boto3
import bench.original_sample_equivalent
sm = boto3.client("secretsmanager")
pca = boto3.client("acm-pca")
print((time.process_time() - t) * 1000)
"""


def sample(code: str) -> float:
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"certrotate": [], "original": []}
    for _ in range(args.runs):
        times["certrotate"].append(sample(CERTROTATE))
        times["original"].append(sample(ORIGINAL))
    ours, theirs = statistics.median(times["certrotate"]), statistics.median(times["original"])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cold path to the first AWS call (CPU ms), median of {args.runs} fresh interpreters each (load {load}):")
    print(f"  original sample (re-implemented): {theirs:6.1f} ms")
    print(f"  certrotate:                       {ours:6.1f} ms  ({ours / theirs:.2f}x)")


if __name__ == "__main__":
    main()

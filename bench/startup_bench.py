"""Benchmark: CPU of one ``certrotate`` and one ``aws`` start, a real exec against the tests' warm launcher.

Run from the repository root:  python bench/startup_bench.py [--runs 10]

Prints the median CPU (user + system, seconds) of ``certrotate status --help`` and of ``aws
secretsmanager get-secret-value`` against moto's server (started here), each run as a new
interpreter and through tests/support/warm.py (the launcher's CPU plus the served child's, which
the fork server reports), and the fork servers' own start-up CPU, paid once per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support import cli, warm  # noqa: E402 - the tests' own launcher and console script


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(command: list[str], env: dict[str, str], program: str | None) -> float:
    """CPU of one run: what this process's children used, plus the served child's when served."""
    before = children_cpu()
    served_before = set(warm.child_cpu(program)) if program else set()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    spent = children_cpu() - before
    if program:
        new = {pid: cpu for pid, cpu in warm.child_cpu(program).items() if pid not in served_before}
        assert len(new) == 1, "the run was not served warm"
        spent += next(iter(new.values()))
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # this process's client

    from rotation.cli.local_apache import free_port

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    cli.make_secret(endpoint, "bench/startup", {"CERTIFICATE_PEM": "-"})
    aws_dir = warm.aws_directory()
    assert aws_dir is not None, "no launcher: gcc and the aws CLI are needed"
    aws_env = {**cli.cli_env(), "AWS_ENDPOINT_URL": endpoint, "LANG": "C", "LC_ALL": "C"}
    aws_argv = ["secretsmanager", "get-secret-value", "--secret-id", "bench/startup", "--output", "json"]
    runs: dict[str, list[float]] = {}
    cases: dict[str, tuple[list[str], dict[str, str], str | None]] = {
        "certrotate status --help, real exec": ([*cli.script(), "status", "--help"], cli.cli_env(), None),
        "aws get-secret-value, real exec": ([str(aws_dir / "aws"), *aws_argv], aws_env, None),
    }
    warm_certrotate = warm.command("certrotate", ["status", "--help"], cli.cli_env())
    assert warm_certrotate is not None
    aws_socket = warm.socket_for("aws", aws_env)
    assert aws_socket is not None
    cases["certrotate status --help, served warm"] = (*warm_certrotate, "certrotate")
    cases["aws get-secret-value, served warm"] = (
        [str(aws_dir / "aws"), *aws_argv],
        {**aws_env, warm.SOCKET_VARIABLE: aws_socket},
        "aws",
    )
    for _ in range(args.runs):
        for name, (command, env, program) in cases.items():
            runs.setdefault(name, []).append(measure(command, env, program))
    warm.stop()  # the fork servers' own CPU (imports, then serving) reaches this process when they end
    servers = children_cpu() - sum(sum(cpu) for cpu in runs.values())
    moto.stop()
    print(json.dumps({name: round(statistics.median(cpu), 3) for name, cpu in runs.items()}, indent=2))
    print(f"fork servers (2, start-up and serving, with the served runs taken out): {servers:.2f} s of CPU in all")
    print(f"runs: {args.runs} each; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

"""Benchmark a sweep of 6 experiments, side by side in one run:

  sweep       ``python -m sweep -S ... --workers 2``: a Dask ``LocalCluster`` of 2 workers
  queue       ``dvc exp run --queue -S ...``, then ``dvc queue start -j 2`` until it drains
  sequential  6 ``dvc exp run -S ...``, one after another, in the workspace

Each method runs in a ``git clone`` of this repository at HEAD (uncommitted changes are
not measured) with a DVC cache of its own, prepared by an untimed ``dvc repro``: the
data is in the cache, and the 6 points all differ from params.yaml, so that each one
trains and none is found in a run cache. The wall time of a method runs from its first
command to its last experiment's end, including the cluster's or queue's start and stop.

Reported for each method: wall time, points per minute, failed points (a command that
failed, or a point missing from ``dvc exp show`` afterwards), and whether its results
are the same bits as the sequential runs' (the md5 of each point's weights).
Results go to ``sweep_results.json`` and ``sweep_results.md`` in the git-ignored
``benchmarks/out/``; with ``--publish``, also over the committed ones in ``benchmarks/``.

Usage: ``python benchmarks/sweep_bench.py [--out DIR] [--publish]`` (``make bench-sweep``), with
``MNIST_MIRROR`` naming the MNIST files (default: ``../shared/mnist`` beside the repository).
"""

import argparse
import datetime
import json
import logging
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("sweep-benchmark")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MIRROR = ROOT.parent / "shared" / "mnist"

# 6 points, none of them params.yaml's own values (learning_rate_init 0.1, alpha 1e-4).
GRID = ("train.learning_rate_init=0.05,0.2,0.3", "train.alpha=1e-5,1e-3")
WORKERS = 2
METHODS = {
    "sweep": f"python -m sweep, {WORKERS} Dask workers",
    "queue": f"dvc exp run --queue + dvc queue start -j {WORKERS}",
    "sequential": "6 x dvc exp run, sequential",
}
QUEUE_TIMEOUT_SECONDS = 1800
WEIGHTS = "outputs/weights.npz"


def run(
    args: list[str], cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"`{shlex.join(args)}` exited with {result.returncode}")
    return result


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def points() -> list[tuple[str, ...]]:
    """The grid's points, each as its ``-S`` values, expanded as DVC expands them."""
    sys.path.insert(0, str(ROOT))
    from sweep.client import expand

    return [point.flags for point in expand(list(GRID))]


def prepare(method: str, tmp: Path, env: dict[str, str]) -> Path:
    """A clone at HEAD, with a git user, whose cache holds the data and the baseline (untimed)."""
    clone = tmp / method
    run(["git", "clone", "--quiet", str(ROOT), str(clone)], tmp, env)
    run(["git", "checkout", "--quiet", "--detach", head()], clone, env)
    if not run(["git", "config", "user.name"], clone, env, check=False).stdout.strip():
        run(["git", "config", "user.name", "sweep benchmark"], clone, env)
        run(["git", "config", "user.email", "sweep-benchmark@localhost"], clone, env)
    log.info("%s: preparing the clone (dvc repro, untimed)", method)
    run(dvc("repro"), clone, env)
    return clone


def head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def run_sweep(clone: Path, env: dict[str, str], prefix: str) -> int:
    flags = [arg for flag in GRID for arg in ("-S", flag)]
    result = run(
        [sys.executable, "-m", "sweep", *flags, "--workers", str(WORKERS), "--name", prefix],
        clone,
        env,
        check=False,
    )
    failed = re.search(r"; (\d+) failed", result.stderr)
    if result.returncode not in (0, 1):
        sys.stderr.write(result.stderr)
    return int(failed.group(1)) if failed else (0 if result.returncode == 0 else len(points()))


def run_queue(clone: Path, env: dict[str, str], prefix: str) -> int:
    flags = [arg for flag in GRID for arg in ("-S", flag)]
    run(dvc("exp", "run", "--queue", *flags, "--name", prefix), clone, env)
    run(dvc("queue", "start", "--jobs", str(WORKERS)), clone, env)
    deadline = time.monotonic() + QUEUE_TIMEOUT_SECONDS
    while True:
        status = run(dvc("queue", "status"), clone, env).stdout
        states = re.findall(r"(?m)^[0-9a-f]{7,}\s+\S+\s.*\s(\w+)$", status)
        if not {"Queued", "Running"} & set(states):
            break
        if time.monotonic() > deadline:
            log.warning("the queue did not drain in %d s:\n%s", QUEUE_TIMEOUT_SECONDS, status)
            break
        time.sleep(0.5)
    return states.count("Failed")


def run_sequential(clone: Path, env: dict[str, str], prefix: str) -> int:
    failed = 0
    for i, point in enumerate(points(), start=1):
        flags = [arg for flag in point for arg in ("-S", flag)]
        result = run(dvc("exp", "run", *flags, "--name", f"{prefix}-{i}"), clone, env, check=False)
        failed += result.returncode != 0
    run(["git", "checkout", "--", "params.yaml", "dvc.lock"], clone, env)
    return failed


def weights_by_point(clone: Path, env: dict[str, str], prefix: str) -> dict[str, str]:
    """The md5 of each experiment's weights, keyed by its swept values."""
    shown = json.loads(run(dvc("exp", "show", "--json"), clone, env).stdout)
    found = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or ():
            if not (experiment.get("name") or "").startswith(f"{prefix}-"):
                continue
            data = experiment["revs"][0]["data"]
            train = data["params"]["params.yaml"]["data"]["train"]
            outs = data.get("outs") or {}
            if WEIGHTS in outs:
                found[f"lr={train['learning_rate_init']} alpha={train['alpha']}"] = outs[WEIGHTS][
                    "hash"
                ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also update the committed benchmarks/sweep_results.*",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.setdefault("MNIST_MIRROR", str(DEFAULT_MIRROR))
    env["PYTHONUNBUFFERED"] = "1"
    runners = {
        "sweep": run_sweep,
        "queue": run_queue,
        "sequential": run_sequential,
    }
    total = len(points())
    results = {}
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        env.setdefault("MNIST_CACHE", str(Path(tmp) / "mnist-cache"))
        clones = {method: prepare(method, Path(tmp), env) for method in METHODS}
        for method, runner in runners.items():
            log.info("%s: %s", method, METHODS[method])
            load = os.getloadavg()[0]
            start = time.perf_counter()
            failed = runner(clones[method], env, method)
            seconds = time.perf_counter() - start
            weights = weights_by_point(clones[method], env, method)
            failed = max(failed, total - len(weights))
            results[method] = {
                "seconds": round(seconds, 2),
                "points_per_minute": round((total - failed) / seconds * 60, 2),
                "failed": failed,
                "load_before": round(load, 2),
                "weights": weights,
            }
            log.info("%s: %.1f s, %d failed", method, seconds, failed)
        run(dvc("queue", "stop", "--kill"), clones["queue"], env, check=False)

    reference = results["sequential"]["weights"]
    for method in results.values():
        method["same_bits_as_sequential"] = (
            method["weights"] == reference and len(reference) == total
        )
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": head()[:12],
        "machine": f"{processor()}, {os.cpu_count()} CPUs",
        "grid": GRID,
        "points": total,
        "workers": WORKERS,
        "methods": results,
    }
    for folder in [args.out, *([ROOT / "benchmarks"] if args.publish else [])]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sweep_results.json").write_text(json.dumps(report, indent=2) + "\n")
        (folder / "sweep_results.md").write_text(markdown(report))
    print(markdown(report))


def processor() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it where there is one."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    found = re.search(r"(?m)^model name\s*:\s*(.+)$", text)
    return found.group(1).strip() if found else platform.machine()


def markdown(report: dict) -> str:
    lines = [
        "# Benchmark: a sweep of 6 experiments, side by side",
        "",
        f"{report['date']}, commit `{report['commit']}`, {report['machine']}. Grid: "
        + " x ".join(f"`{flag}`" for flag in report["grid"])
        + f" ({report['points']} points), {report['workers']} at a time where parallel.",
        "",
        "| method | wall (s) | points / minute | failed points | same bits as sequential"
        " | load before |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for key, result in report["methods"].items():
        lines.append(
            f"| {METHODS[key]} | {result['seconds']:.1f} | {result['points_per_minute']:.2f} |"
            f" {result['failed']} | {'yes' if result['same_bits_as_sequential'] else 'no'} |"
            f" {result['load_before']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

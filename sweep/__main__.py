"""``python -m sweep -S KEY=V1,V2 [-S ...] [--workers N | --scheduler ADDRESS] [--name PREFIX]``

Exit codes: 0 when every point is in ``dvc exp show``; 1 when a point failed (each is
reported with its error); 2 for a mistake in the command or the repository, before
anything runs; 128+N when stopped by signal N (130 for Ctrl-C).
"""

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from stages.errors import STOP_SIGNALS, StageStopped, UserError
from sweep import driver
from sweep.grid import expand

log = logging.getLogger("sweep")

DEFAULT_WORKERS = 2


def parse_env(items: list[str]) -> dict[str, str]:
    """``NAME=VALUE``, or ``NAME`` for this shell's value of NAME."""
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            if name not in os.environ:
                raise UserError(f"--env {name}: not set here; give NAME=VALUE")
            value = os.environ[name]
        env[name] = value
    return env


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sweep",
        description="Run a grid of DVC experiments as Dask tasks, on this machine or a cluster;"
        " each point becomes a row of `dvc exp show`.",
    )
    p.add_argument(
        "-S",
        "--set-param",
        dest="flags",
        action="append",
        default=[],
        metavar="[FILE:]KEY=V1,V2",
        help="values to sweep, as for `dvc exp run -S`; several -S give their cross product",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="start a local Dask cluster of N single-threaded worker processes (default: 2)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use the Dask cluster of this scheduler, e.g. tcp://HOST:8786",
    )
    p.add_argument("--name", metavar="PREFIX", help="name the experiments PREFIX-1, PREFIX-2, ...")
    p.add_argument(
        "--git-url",
        metavar="URL",
        help="where the workers clone the project and push the experiments"
        " (default: this repository)",
    )
    p.add_argument(
        "--worker-dir",
        metavar="DIR",
        help="with --scheduler: the workers' folder for their shared DVC cache and clones"
        " (default: ~/.cache/mnist-mlp-sweep on each worker)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="set this variable for the points' commands, to this shell's value of NAME if no"
        " VALUE (local workers inherit this shell's environment anyway; remote ones do not)",
    )
    return p


def _stop(signum, frame):
    # Once: stopping the sweep in order takes a few seconds that a second Ctrl-C must not cut short.
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise StageStopped(signum)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Dask's own INFO lines (workers starting and closing) are noise here: its warnings stay.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("sweep").setLevel(logging.INFO)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)
    try:
        workers = DEFAULT_WORKERS if args.workers is None else args.workers
        if workers < 1:
            raise UserError(f"--workers {workers}: expected at least 1")
        if args.worker_dir and not args.scheduler:
            raise UserError(
                "--worker-dir is for --scheduler: local workers share this project's cache"
            )
        options = driver.Options(
            workers=workers,
            scheduler=args.scheduler,
            name=args.name,
            git_url=args.git_url,
            worker_dir=args.worker_dir,
            env=parse_env(args.env),
        )
        return driver.sweep(options, expand(args.flags), Path.cwd())
    except UserError as exc:
        log.error("error: %s", exc)
        return 2
    except StageStopped as exc:
        log.error("stopped by %s", exc)
        return 128 + exc.signum


if __name__ == "__main__":
    sys.exit(main())

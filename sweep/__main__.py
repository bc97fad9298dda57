"""``python -m sweep -S KEY=V1,V2 [-S ...] [--workers N | --scheduler ADDRESS] [--name PREFIX]``

Exit codes (``sweep.shared``): 0 when every point is in ``dvc exp show``; 1 when a point
failed (each is reported with its error); 2 for a mistake in the command or the
repository, before anything runs (every point of the grid is checked against the params
first); 128+N when stopped by signal N (130 for Ctrl-C).

The environment is read here, once, in ``main``: what ``--env NAME`` forwards, and what
the points' commands get (``sweep.client.points_env``).
"""

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import UserError
from pipeline.secrets import Secret
from sweep import client, cluster
from sweep.shared import boundary

DEFAULT_WORKERS = 2
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env(items: list[str], environ: Mapping[str, str]) -> dict[str, Secret]:
    """``NAME=VALUE``, or ``NAME`` for this shell's value of NAME (in ``environ``); each
    value a secret, which no message names (only its variable)."""
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not VARIABLE_NAME.fullmatch(name):
            shown = f"{name!r}{'=...' if sep else ''}" if name else "=..."
            raise UserError(
                f"--env {shown}: expected NAME or NAME=VALUE, NAME being a variable's name"
                " (letters, digits and _, not first a digit)"
            )
        if not sep:
            if name not in environ:
                raise UserError(f"--env {name}: not set here; give NAME=VALUE")
            value = environ[name]
        env[name] = Secret(value)
    return env


def command_secrets(args: argparse.Namespace, environ: Mapping[str, str]) -> list[Secret]:
    """Every secret of the command line: read before the command line is checked, so
    that no message about it, whatever it says, can show one."""
    secrets = [Secret.url(args.git_url or "")]
    for item in args.env:
        name, sep, value = item.partition("=")
        secrets.append(Secret(value if sep else environ.get(name, "")))
    return secrets


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
        help="start a local Dask cluster of N single-threaded worker processes, at most one a"
        f" point (default: {DEFAULT_WORKERS})",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use the Dask cluster of this scheduler: tls://HOST:8786 (with the --tls-*"
        " options), or tcp://HOST:8786 on a network you trust",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=cluster.DEFAULT_CONNECT_SECONDS,
        metavar="SECONDS",
        help="with --scheduler: how long to try to reach it (default: %(default)g)",
    )
    for option, what, key in (
        ("--tls-ca-file", "the CA that signed the cluster's certificates", "ca-file"),
        ("--tls-cert", "this client's certificate", "client.cert"),
        ("--tls-key", "this client's private key", "client.key"),
    ):
        p.add_argument(
            option,
            metavar="FILE",
            help=f"with a tls:// scheduler: {what} (default: Dask's configuration,"
            f" distributed.comm.tls.{key})",
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
        help="with --scheduler: the workers' folder for their shared DVC cache and clones,"
        " absolute or under ~ (default: ~/.cache/mnist-mlp-sweep on each worker)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="set this variable for the points' commands, to this shell's value of NAME if no"
        " VALUE (local workers inherit this shell's environment anyway; remote ones do not);"
        " a secret: never printed",
    )
    return p


def options(args: argparse.Namespace, cwd: Path, environ: Mapping[str, str]) -> client.Options:
    """Check the command line as far as it can be without the project."""
    workers = DEFAULT_WORKERS if args.workers is None else args.workers
    if workers < 1:
        raise UserError(f"--workers {workers}: expected at least 1")
    target = None
    if args.scheduler:
        tls = cluster.TlsFiles(args.tls_ca_file, args.tls_cert, args.tls_key)
        target = cluster.scheduler(args.scheduler, tls, args.connect_timeout, cwd)
    else:
        given = cluster.TlsFiles(args.tls_ca_file, args.tls_cert, args.tls_key).given()
        if given:
            raise UserError(f"{', '.join(given)}: for a tls:// --scheduler only")
        if args.worker_dir:
            raise UserError(
                "--worker-dir is for --scheduler: local workers share this project's cache"
            )
    if args.worker_dir and not (Path(args.worker_dir).is_absolute() or args.worker_dir[0] == "~"):
        raise UserError(
            f"--worker-dir {args.worker_dir}: a folder on each worker, so absolute or under ~"
            " (a relative path would be relative to wherever its worker started)"
        )
    env = parse_env(args.env, environ)
    git_url = None
    if args.git_url:
        git_url = Secret.url(client.absolute_url(args.git_url, cwd))
    if target:
        carried = ["--env values"] if env else []
        carried += ["--git-url's credentials"] if git_url and git_url.texts() else []
        cluster.warn_if_plain(target, carried)
    return client.Options(
        workers=workers,
        scheduler=target,
        name=args.name,
        git_url=git_url,
        worker_dir=args.worker_dir,
        env=env,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cwd = Path.cwd()
    environ = dict(os.environ)

    def run_sweep() -> int:
        checked = options(args, cwd, environ)
        return client.sweep(checked, client.expand(args.flags), cwd, environ)

    return boundary(run_sweep, secrets=command_secrets(args, environ))


if __name__ == "__main__":
    sys.exit(main())

"""The environment of the points' commands: what the client sends for them to set.

A point runs as ``dvc exp run`` would in this shell: the variables that Dask's nanny
changes for its workers get this shell's values back, and a relative path in the
stages' variables is made absolute first (a point runs in a clone elsewhere).
``--env`` values travel as ``Secret``s.
"""

import logging
import os
from pathlib import Path

from sweep.shared import Secret

log = logging.getLogger(__name__)

# The variables of the stages that hold a path: a relative one would be relative to the
# point's clone, not to where the sweep runs (MNIST_MIRROR=../shared/mnist).
PATH_VARIABLES = ("MNIST_MIRROR", "MNIST_CACHE", "XDG_CACHE_HOME")


def absolute_paths(env: dict[str, str], cwd: Path) -> dict[str, str]:
    """The ``PATH_VARIABLES`` of ``env`` whose value is a relative path, made absolute
    from ``cwd``; one line says so, without their values (an ``--env`` value is secret)."""
    changed = {
        name: os.path.abspath(cwd / value)
        for name, value in env.items()
        if name in PATH_VARIABLES
        and value
        and "://" not in value
        and not value.lower().startswith("file:")
        and not value.startswith("~")
        and not Path(value).is_absolute()
    }
    if changed:
        log.info(
            "%s: relative path%s made absolute for the points, from %s (where the sweep runs)",
            ", ".join(sorted(changed)),
            "s" if len(changed) > 1 else "",
            cwd,
        )
    return changed


def nanny_variables() -> set[str]:
    """The environment variables that a Dask nanny sets for its worker processes.

    Among them one BLAS and OpenMP thread per worker, and a fixed PYTHONHASHSEED: the
    points get this shell's values back, so that each runs as ``dvc exp run`` would here.
    (The stages pin OpenBLAS's threads themselves, ``pipeline/cpu.py``, so the bits do not
    depend on it.)
    """
    import dask
    import distributed  # noqa: F401  (its defaults join dask.config when it is imported)

    return (
        set(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        | set(dask.config.get("distributed.nanny.environ", {}))
        | {"PYTHONHASHSEED"}
    )


def points_env(local: bool, cwd: Path) -> dict[str, str | None]:
    """The environment changes for the points' commands (``None`` unsets a variable).

    This shell's values of the variables that Dask's nanny sets (``nanny_variables``), and,
    for ``local`` workers (which inherit this shell's environment), its relative paths
    made absolute (``absolute_paths``).
    """
    env = {name: os.environ.get(name) for name in nanny_variables()}
    return env | (absolute_paths(dict(os.environ), cwd) if local else {})


def secret_env(env: dict[str, Secret], cwd: Path) -> dict[str, Secret]:
    """``--env``, with its relative paths made absolute (``absolute_paths``)."""
    changed = absolute_paths({name: value.reveal() for name, value in env.items()}, cwd)
    return env | {name: Secret(value) for name, value in changed.items()}

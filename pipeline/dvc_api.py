"""Every piece of DVC that the project uses beyond its command line, in one place.

DVC's Python API is not public: these are functions of ``dvc.utils`` (how ``dvc exp run
-S`` parses, expands and applies its flags), its ``Repo`` object (the cache folder, the
default remote, the local config), the git ref of an experiment, and the lines that
``dvc exp run`` prints. Using DVC's own parsing keeps a flag meaning here exactly what
it means to DVC. ``tests/test_dvc_api.py`` checks each of them against the installed
DVC, so that an upgrade that changes one fails there, by name, rather than in a sweep.
"""

import re
from pathlib import Path

# DVC's default params file: the one that -S KEY=VALUE (without FILE:) sets.
PARAMS_FILE = "params.yaml"

RUNNING_STAGE = re.compile(r"Running stage '([^']+)'")


class FlagError(Exception):
    """A ``-S`` value that DVC cannot parse, or cannot apply to its params file."""


def grid(flags: list[str]) -> list[dict[str, list[str]]]:
    """The points of the cross product of ``flags``, as ``dvc exp run --queue -S`` expands
    them: each a ``{params file: [KEY=VALUE, ...]}``, normalised as DVC writes them."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps
    from hydra.errors import HydraException

    try:
        return get_hydra_sweeps(to_path_overrides(flags))
    except (HydraException, InvalidArgumentError) as exc:
        # Hydra's last line is a link to its grammar: our messages say it shorter
        reason = [line for line in str(exc).splitlines() if not line.startswith("See https")]
        raise FlagError(" ".join(reason)) from None


def override_keys(texts: list[str]) -> list[str]:
    """The key that each ``KEY=VALUE`` (in Hydra's override grammar) sets."""
    from dvc.utils.hydra import to_hydra_overrides

    return [override.key_or_group for override in to_hydra_overrides(texts)]


def apply_overrides(path: Path, texts: list[str]) -> None:
    """Write ``texts`` (``KEY=VALUE``) into the params file ``path`` as ``dvc exp run -S``
    does; a ``FlagError`` with DVC's (Hydra's) reason if it cannot."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides as dvc_apply_overrides

    try:
        dvc_apply_overrides(path, texts)
    except InvalidArgumentError as exc:
        raise FlagError(" ".join(str(exc.__cause__ or exc).split())) from None


def cache_and_remote(root: Path) -> tuple[Path, str]:
    """The repository's DVC cache folder, and the name of its default remote ("" if none)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return Path(repo.cache.local_cache_dir), repo.config["core"].get("remote", "")


def use_cache(root: Path, cache_dir: Path) -> str:
    """Point the repository's DVC at ``cache_dir`` (its local config); the name of its
    default remote, if any. In this process: two ``dvc config`` commands take a second."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        remote = repo.config["core"].get("remote", "")
        with repo.config.edit("local") as local:
            local["cache"]["dir"] = str(cache_dir)
    return remote


def exp_ref(base: str, name: str) -> str:
    """The git ref of experiment ``name`` of baseline commit ``base``, as DVC names it."""
    return f"refs/exps/{base[:2]}/{base[2:]}/{name}"


def ran_stages(output: str) -> tuple[str, ...]:
    """The stages that ``dvc repro`` or ``dvc exp run`` says it ran, in order."""
    return tuple(RUNNING_STAGE.findall(output))


def error_lines(output: str) -> list[str]:
    """DVC's own ``ERROR: ...`` lines in ``output``, without the prefix."""
    return [
        line.removeprefix("ERROR: ").strip()
        for line in output.splitlines()
        if line.startswith("ERROR: ")
    ]


def experiments(shown: list[dict]) -> dict[str, dict]:
    """The experiments in ``dvc exp show --json`` output, by name: each one's data."""
    return {
        experiment["name"]: experiment["revs"][0]["data"]
        for baseline in shown
        for experiment in baseline.get("experiments") or ()
    }


def rows(shown: list[dict]) -> list[tuple[str, dict]]:
    """Each baseline of ``dvc exp show --json`` output, then its experiments, in order:
    (name, data); a baseline without a name is named by its short commit."""
    found = []
    for baseline in shown:
        for entry in [baseline, *(baseline.get("experiments") or ())]:
            data = entry["revs"][0]["data"] if "revs" in entry else entry.get("data") or {}
            rev = entry.get("rev") or "?"
            found.append((entry.get("name") or (rev[:7] if len(rev) == 40 else rev), data))
    return found

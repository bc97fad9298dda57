"""Every piece of DVC that the project uses beyond its command line, in one place.

DVC's Python API is not public: these are functions of ``dvc.utils`` (how ``dvc exp run
-S`` parses, expands and applies its flags, how DVC parses its YAML files), its ``Repo``
object (the cache folder, the default remote, the local config, the status), the git
ref of an experiment, the lines that ``dvc exp run`` prints, and the shape of dvc.yaml
and dvc.lock: their stages, each stage's outputs and the deps that dvc.lock records.
Using DVC's own parsing keeps a flag meaning here exactly what it means to DVC.
``tests/test_dvc_api.py`` checks each of them against the installed DVC, so that an upgrade
that changes one fails there, by name, rather than in a sweep.
"""

import re
import shlex
from pathlib import Path
from typing import Any

from pipeline.errors import one_line

# DVC's default params file: the one that -S KEY=VALUE (without FILE:) sets.
PARAMS_FILE = "params.yaml"
# The schema of the dvc.lock that DVC 3 writes.
LOCK_SCHEMA = "2.0"
# The lists of a stage of dvc.yaml whose entries are its outputs.
OUTPUT_KINDS = ("outs", "metrics", "plots")

RUNNING_STAGE = re.compile(r"Running stage '([^']+)'")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class FlagError(Exception):
    """A ``-S`` value that DVC cannot parse, or cannot apply to its params file."""


class DvcFileError(Exception):
    """A dvc.yaml or dvc.lock that is not what DVC reads: one line, naming the file."""


class DvcError(Exception):
    """DVC cannot open the project or tell its status: DVC's reason, on one line."""


class DvcBusy(DvcError):
    """Another dvc command holds the project's lock, so DVC tells nothing meanwhile."""


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


# --- dvc.yaml and dvc.lock ------------------------------------------------------------------


def shown(value: Any, limit: int = 200) -> str:
    """``value`` as a message can show it: on one line, without DVC's colours, and not too
    long."""
    if isinstance(value, str):
        value = ANSI_ESCAPE.sub("", value)
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return one_line(text, limit)


def kind_of(value: Any) -> str:
    """What a YAML value is, for a message: ``a list``, ``int 12``..."""
    if value is None:
        return "nothing"
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {shown(value)}"


def parse_yaml(text: str, path: Path) -> Any:
    """The text of DVC's YAML file ``path``, parsed by DVC's own parser (ruamel.yaml's safe
    loader, YAML 1.2): an empty file is ``{}``. ``DvcFileError`` with the line and the
    problem where it is not YAML."""
    from dvc.utils.serialize import YAMLFileCorruptedError
    from dvc.utils.serialize import parse_yaml as dvc_parse_yaml

    try:
        return dvc_parse_yaml(text, str(path))
    except YAMLFileCorruptedError as exc:  # raised from ruamel.yaml's own error
        cause = exc.__cause__ or exc
        mark, problem = getattr(cause, "problem_mark", None), getattr(cause, "problem", None)
        where = (
            f"line {mark.line + 1}: {problem}" if mark and problem else " ".join(str(cause).split())
        )
        raise DvcFileError(f"{path}: not valid YAML ({shown(where, 120)})") from None


def read_yaml(path: Path) -> Any:
    """A YAML file of the project's own (dvc.yaml, dvc.lock, params.yaml), parsed as DVC
    parses it."""
    return parse_yaml(Path(path).read_text(encoding="utf-8"), path)


def each_stage(path: Path, stages: dict) -> list[tuple[str, str, dict]]:
    """Each stage of a dvc.yaml's or dvc.lock's ``stages``: its name, where it is (for
    messages) and its mapping; ``DvcFileError`` for a stage that is not a mapping."""
    found = []
    for name, stage in stages.items():
        where = f"{path}: stage {shown(name)}"
        if not isinstance(stage, dict):
            raise DvcFileError(f"{where} is {kind_of(stage)}, expected a mapping")
        found.append((str(name), where, stage))
    return found


def yaml_stages(path: Path, data: Any) -> list[tuple[str, str, dict]]:
    """The stages of dvc.yaml's content ``data``, as ``each_stage`` gives them."""
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        raise DvcFileError(f"{path}: expected a mapping `stages:` of stage names")
    return each_stage(path, stages)


def lock_stages(path: Path, data: Any) -> list[tuple[str, str, dict]]:
    """The stages of dvc.lock's content ``data``, as ``each_stage`` gives them; none for an
    empty file (no stage has run yet). ``DvcFileError`` for anything but DVC 3's dvc.lock."""
    if data is None or data == {}:
        return []
    if not isinstance(data, dict):
        raise DvcFileError(
            f"{path}: expected a mapping with schema and stages, found {kind_of(data)}"
        )
    if data.get("schema") != LOCK_SCHEMA:
        raise DvcFileError(
            f"{path}: schema {shown(data.get('schema'))}, expected '{LOCK_SCHEMA}' (the"
            " dvc.lock that DVC 3 writes): run `dvc repro` to write it again"
        )
    stages = data.get("stages")
    stages = {} if stages is None else stages
    if not isinstance(stages, dict):
        raise DvcFileError(f"{path}: stages is {kind_of(stages)}, expected a mapping by stage name")
    return each_stage(path, stages)


def listed(stage: dict, key: str, where: str) -> list:
    """A stage's list field (outs, metrics, plots), empty if absent or null;
    ``DvcFileError`` for anything but a list."""
    entries = stage.get(key)
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        raise DvcFileError(f"{where}: {key} is {kind_of(entries)}, expected a list")
    return entries


def entry(item: Any) -> tuple[Any, dict]:
    """A dvc.yaml list's entry, a path or a one-key mapping of a path to its options: the
    path (unchecked) and the options."""
    if isinstance(item, dict) and len(item) == 1:
        [(name, options)] = item.items()
        return name, options if isinstance(options, dict) else {}
    return item, {}


def entry_paths(entries) -> list[str]:
    """The paths of a dvc.yaml list, whose entries are strings or one-key mappings."""
    return [entry(item)[0] for item in entries or []]


def lock_deps(data: Any) -> set[str]:
    """The deps (and params files) that dvc.lock's content ``data`` records, as paths;
    what is not a list of deps is no dep."""
    stages = data.get("stages") if isinstance(data, dict) else None
    found = set()
    for stage in stages.values() if isinstance(stages, dict) else []:
        if not isinstance(stage, dict):
            continue
        deps, params = stage.get("deps"), stage.get("params")
        for dep in deps if isinstance(deps, list) else []:
            if isinstance(dep, dict) and isinstance(dep.get("path"), str):
                found.add(dep["path"])
        found |= {
            name for name in (params if isinstance(params, dict) else {}) if isinstance(name, str)
        }
    return found


def stages(root: Path) -> dict[str, dict]:
    """The stages of ``root``'s dvc.yaml, by name, in the pipeline's order."""
    return read_yaml(root / "dvc.yaml")["stages"]


def declared_outputs(root: Path) -> list[str]:
    """The paths of every stage's outs, metrics and plots in ``root``'s dvc.yaml."""
    return [
        path
        for stage in stages(root).values()
        for kind in OUTPUT_KINDS
        for path in entry_paths(stage.get(kind))
    ]


def stage_commands(root: Path) -> dict[str, list[str]]:
    """Each stage's command in ``root``'s dvc.yaml, by stage name: what DVC's shell execs."""
    commands = {name: shlex.split(stage["cmd"]) for name, stage in stages(root).items()}
    return {name: argv[1:] if argv[:1] == ["exec"] else argv for name, argv in commands.items()}


# --- the repository: its cache and its status -----------------------------------------------


def local_cache(root: Path) -> tuple[Path, Path] | None:
    """The local DVC cache of the project at ``root``, wherever DVC's config puts it: its
    folder and the folder of its objects by md5 (DVC 3's ``files/md5``); None where DVC
    has no local cache. ``DvcError`` if DVC cannot open the project."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            objects, legacy = repo.cache.local, repo.cache.legacy
    except DvcException as exc:
        raise DvcError(shown(str(exc), 200)) from None
    if objects is None or objects.fs.protocol != "local":
        return None
    return Path(legacy.path), Path(objects.path)


def status(root: Path) -> dict[str, list]:
    """``dvc status`` of the project at ``root``, as DVC's ``Repo.status`` gives it: for
    each changed stage, its changes (a line, or a mapping such as ``{"changed deps":
    {path: what}}``). ``DvcBusy`` while another dvc holds the lock, ``DvcError`` if DVC
    cannot tell."""
    from dvc.exceptions import DvcException
    from dvc.lock import LockError
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            return repo.status()
    except LockError:
        raise DvcBusy("another dvc command holds the project's lock") from None
    except DvcException as exc:
        raise DvcError(shown(str(exc), 200)) from None

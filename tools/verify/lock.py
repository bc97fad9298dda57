"""dvc.lock and dvc.yaml as verify reads them: through ``pipeline.dvc_api``, which knows
their shape, with every hash and path checked before it becomes part of a path."""

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline import dvc_api
from tools.verify.files import NotHashed, open_regular
from tools.verify.report import BadInput, kind_of, shown

# DVC 3's md5 of a file, or of a directory's listing followed by ".dir".
OUTPUT_HASH = re.compile(r"[0-9a-f]{32}(\.dir)?")

# git's conflict markers (diff3's ||||||| included), at the start of a line.
CONFLICT_MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})(\s|$)", re.MULTILINE)

# The most that dvc.lock or dvc.yaml may hold: this project's are under 10 KB.
MAX_YAML_BYTES = 4 << 20

# dvc.yaml features that change what a stage's paths mean, which verify does not expand.
UNSUPPORTED_STAGE_KEYS = ("foreach", "matrix", "do", "wdir")


def read_yaml_file(path: Path, *, fix: str) -> Any:
    """A YAML file of DVC's, parsed as DVC parses it; ``BadInput`` (ending in ``fix``
    where a merge left its markers) if it cannot be."""
    try:
        with open_regular(path) as (fd, info):
            if info.st_size > MAX_YAML_BYTES:
                raise BadInput(
                    f"{path}: {info.st_size} bytes, more than the {MAX_YAML_BYTES} that a"
                    " DVC file of this project can hold"
                )
            data = os.read(fd, MAX_YAML_BYTES + 1)
        text = data[:MAX_YAML_BYTES].decode("utf-8")
    except NotHashed as why:
        what = {"missing": "not found", "not a file": f"{why.detail}, not a file"}
        raise BadInput(f"{path}: {what.get(why.label, f'cannot read it ({why.detail})')}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read it ({exc.strerror})") from None
    if marker := CONFLICT_MARKER.search(text):
        line = text.count("\n", 0, marker.start()) + 1
        raise BadInput(f"{path}: a merge-conflict marker on line {line}: {fix}")
    try:
        return dvc_api.parse_yaml(text, path)
    except dvc_api.DvcFileError as exc:
        raise BadInput(str(exc)) from None


def project_path(value: Any, where: str) -> str:
    """A path from dvc.yaml or dvc.lock, checked to stay inside the project, normalized."""
    if not isinstance(value, str) or not value:
        raise BadInput(f"{where}: expected a path, found {kind_of(value)}")
    posix = PurePosixPath(value)
    if posix.is_absolute() or re.match(r"[A-Za-z]:", value) or ".." in posix.parts:
        raise BadInput(
            f"{where}: path {shown(value)} is outside the project; outputs are paths"
            " relative to the project's root, without '..'"
        )
    if not value.isprintable() or posix.as_posix() == ".":
        raise BadInput(f"{where}: path {shown(value)} is not a file or folder of the project")
    return posix.as_posix()


@dataclass(frozen=True)
class Locked:
    """An output as dvc.lock records it: its hash, and its size where recorded."""

    stage: str
    md5: str
    size: int | None = None


def read_lock(path: Path) -> dict[str, Locked]:
    """Every output of a dvc.lock, by path, each hash and path checked; ``BadInput`` on
    anything that is not a dvc.lock of DVC 3."""
    fix = f"keep one side (`git checkout --theirs {path.name}`), then `dvc repro` updates it"
    raw = read_yaml_file(path, fix=fix)
    locked: dict[str, Locked] = {}
    try:
        for stage_name, where, stage in dvc_api.lock_stages(path, raw):
            for out in dvc_api.listed(stage, "outs", where):
                out_path, md5, size = locked_out(out, where)
                if out_path in locked:
                    raise BadInput(f"{where}, out {out_path}: recorded twice")
                locked[out_path] = Locked(stage_name, md5, size)
    except dvc_api.DvcFileError as exc:
        raise BadInput(str(exc)) from None
    return locked


def locked_out(out: Any, where: str) -> tuple[str, str, int | None]:
    """An out of a dvc.lock's stage (``where``): its path, md5 and size, each checked."""
    if not isinstance(out, dict):
        raise BadInput(f"{where}: an out is {kind_of(out)}, expected a mapping")
    out_path = project_path(out.get("path"), f"{where}: out")
    where_out = f"{where}, out {out_path}"
    if "md5" not in out:
        raise BadInput(
            f"{where_out}: no md5 (DVC records one for every output): run"
            " `dvc repro` to write dvc.lock again"
        )
    md5 = out["md5"]
    if not isinstance(md5, str) or not OUTPUT_HASH.fullmatch(md5):
        raise BadInput(
            f"{where_out}: md5 {shown(md5)} is not 32 lowercase hex digits (nor"
            " DVC's <32 hex digits>.dir)"
        )
    if out.get("hash") != "md5":
        raise BadInput(
            f"{where_out}: hash {shown(out.get('hash'))}, expected md5 (DVC 3's;"
            " DVC 2 hashed text files otherwise): run `dvc repro` with the"
            " project's DVC"
        )
    size = out.get("size")
    return out_path, md5, size if isinstance(size, int) and not isinstance(size, bool) else None


def recorded_deps(path: Path) -> set[str]:
    """The deps (and params files) that a dvc.lock records, as paths; read after
    ``read_lock`` accepted the file."""
    return dvc_api.lock_deps(read_yaml_file(path, fix=""))


@dataclass(frozen=True)
class Declared:
    """An output as dvc.yaml declares it."""

    stage: str
    cached: bool  # False for `cache: false`: DVC keeps no copy in its cache


def read_declared(path: Path) -> dict[str, Declared]:
    """Every output (outs, metrics and plots) that dvc.yaml's stages declare, by path."""
    raw = read_yaml_file(path, fix="resolve the conflict first")
    declared: dict[str, Declared] = {}
    try:
        for stage_name, where, stage in dvc_api.yaml_stages(path, raw):
            for key in UNSUPPORTED_STAGE_KEYS:
                if key in stage and not (key == "wdir" and stage[key] in (".", "./")):
                    raise BadInput(f"{where} uses `{key}`, which verify does not expand")
            for kind in dvc_api.OUTPUT_KINDS:
                for item in dvc_api.listed(stage, kind, where):
                    name, options = dvc_api.entry(item)
                    if isinstance(name, str) and "${" in name:
                        raise BadInput(
                            f"{where}: {kind} {shown(name)} is templated, which verify does"
                            " not expand"
                        )
                    out_path = project_path(name, f"{where}: {kind}")
                    if out_path in declared:
                        raise BadInput(f"{where}: {out_path} declared twice")
                    declared[out_path] = Declared(
                        stage_name, options.get("cache", True) is not False
                    )
    except dvc_api.DvcFileError as exc:
        raise BadInput(str(exc)) from None
    return declared


@dataclass(frozen=True)
class Output:
    """An output of the pipeline, as dvc.yaml declares it and dvc.lock records it."""

    path: str
    stage: str
    md5: str | None  # None: dvc.lock does not record it
    cached: bool
    declared: bool
    locked_stage: str | None = None  # the stage that dvc.lock records it under
    size: int | None = None  # dvc.lock's, where it records one


def reconcile(declared: dict[str, Declared], locked: dict[str, Locked]) -> list[Output]:
    """Every output of dvc.yaml or dvc.lock, sorted by path."""
    outputs = []
    for path in sorted(declared.keys() | locked.keys()):
        decl, lock = declared.get(path), locked.get(path)
        outputs.append(
            Output(
                path=path,
                stage=decl.stage if decl else lock.stage,
                md5=lock.md5 if lock else None,
                size=lock.size if lock else None,
                cached=decl.cached if decl else True,
                declared=decl is not None,
                locked_stage=lock.stage if lock else None,
            )
        )
    return outputs

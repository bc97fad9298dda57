"""Verify a reproduction: the outputs against dvc.lock, the DVC cache against its own
hashes, and the published numbers of the example's version that params.yaml describes.

``python -m tools.verify`` (``make verify``) reports, one line each:

- every output that dvc.yaml declares (outs, metrics and plots): identical to what
  dvc.lock records, different, missing, unreadable, not a file, outside the project, or
  absent from dvc.lock; and every output of dvc.lock that dvc.yaml does not declare;
- every object of the DVC cache that the workspace's dvc.lock refers to (a directory's
  listing and each file it lists included), hashed again: intact, missing, unreadable,
  not a file or corrupt. DVC never checks its cache, so a corrupt object would be
  checked out and trained on as if it were good. A corrupt one is moved aside into the
  folder ``corrupt`` of the cache's own directory (the same file system; nothing outside
  the cache is ever moved), so that the next ``dvc repro`` rebuilds it instead of using it;
- where the outputs differ from dvc.lock on a CPU that cannot run the pinned code paths
  (``pipeline/cpu.py``), the losses and accuracies against scikit-learn's published ones,
  within ``published.LOSS_TOLERANCE`` and ``ACCURACY_TOLERANCE``, of whichever version
  params.yaml describes (``pipeline/published.py``: the example as published in 2017,
  or the stable gallery's since 2021); for other params, the bytes only. Where the CPU runs them, a
  reproduction gives dvc.lock's bytes, and nothing less passes.

``--numbers`` checks only the published numbers of the outputs on disk, for runs where
the bytes legitimately differ (an emulated CPU); ``--strict`` requires dvc.lock's bytes
everywhere; ``--lock FILE`` compares with another dvc.lock than the workspace's.

dvc.lock and dvc.yaml are input: a hash that is not 32 lowercase hex digits (or DVC's
``<32 hex digits>.dir``) or a path that leaves the project is refused before it becomes
part of a path. Exit codes: 0 the reproduction holds, 1 it does not,
2 the input cannot be checked (one line says why), 130 stopped by Ctrl-C.
"""

import argparse
import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ruamel.yaml import YAML, YAMLError

from pipeline import cpu, datasets, formats, paths, published
from pipeline.config import load_params
from pipeline.errors import UserError
from pipeline.paths import Layout

log = logging.getLogger(__name__)

EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130

CHUNK_BYTES = 1 << 20

# DVC 3's md5 of a file, or of a directory's listing followed by ".dir".
OUTPUT_HASH = re.compile(r"[0-9a-f]{32}(\.dir)?")
FILE_HASH = re.compile(r"[0-9a-f]{32}")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# git's conflict markers (diff3's ||||||| included), at the start of a line.
CONFLICT_MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})(\s|$)", re.MULTILINE)
# Where corrupt objects go, inside the cache's own directory: the same file system, and
# a name that DVC never reads as an object (those sit in two-character folders).
QUARANTINE = "corrupt"
DECLARED_KINDS = ("outs", "metrics", "plots")
# dvc.yaml features that change what a stage's paths mean, which verify does not expand.
UNSUPPORTED_STAGE_KEYS = ("foreach", "matrix", "do", "wdir")


class BadInput(Exception):
    """dvc.lock, dvc.yaml, params.yaml or DVC's configuration cannot be checked as they
    are: one line, exit 2."""


class NotHashed(Exception):
    """Why a file was not hashed: the word of the report (missing, unreadable, not a
    file, outside) and the detail."""

    def __init__(self, label: str, detail: str = ""):
        super().__init__(label, detail)
        self.label = label
        self.detail = detail


# The most that dvc.lock or dvc.yaml may hold: this project's are under 10 KB.
MAX_YAML_BYTES = 4 << 20


@contextlib.contextmanager
def open_regular(path: Path, within: tuple[Path, ...] = ()) -> Iterator[tuple[int, os.stat_result]]:
    """The open descriptor of the regular file ``path`` and its ``fstat``, checked on the
    descriptor itself, so that nothing swapped in between a check and the open is read:
    a FIFO or a device is never read (and opening one never blocks), and with ``within``
    the file that was opened must lie in one of those folders, whatever links led to it.
    ``NotHashed`` says why not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        if path.is_symlink():
            raise NotHashed(
                "missing", f"a symbolic link to {os.readlink(path)}, which is not there"
            ) from None
        raise NotHashed("missing") from None
    except OSError as exc:
        raise NotHashed("unreadable", exc.strerror) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotHashed("not a file", _file_kind(info.st_mode))
        if within:
            real = _opened_path(fd, path)
            if not any(real.is_relative_to(folder) for folder in within):
                raise NotHashed(
                    "outside", f"it leads to {real}, outside the project and its DVC cache"
                )
        yield fd, info
    finally:
        os.close(fd)


def _opened_path(fd: int, path: Path) -> Path:
    """Where the file open as ``fd`` is: the kernel's word on Linux, else ``path`` resolved."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return path.resolve()


def digest(fd: int, path: Path) -> str:
    """The md5 of the bytes of ``path``, open as ``fd``."""
    md5 = hashlib.md5()
    while chunk := os.read(fd, CHUNK_BYTES):
        md5.update(chunk)
    return md5.hexdigest()


def md5_of(path: Path, within: tuple[Path, ...] = ()) -> str:
    """The md5 of a regular file's bytes: what DVC 3 records for a file output."""
    with open_regular(path, within) as (fd, _):
        return digest(fd, path)


def shown(value: Any, limit: int = 200) -> str:
    """``value`` as a message can show it: on one line, and not too long."""
    if isinstance(value, str):
        value = ANSI_ESCAPE.sub("", value)  # DVC colours its messages
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind_of(value: Any) -> str:
    """What a YAML value is, for a message: ``a list``, ``int 12``..."""
    if value is None:
        return "nothing"
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {shown(value)}"


# --- dvc.lock and dvc.yaml ------------------------------------------------------------------


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
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = (
            f"line {mark.line + 1}: {problem}" if mark and problem else " ".join(str(exc).split())
        )
        raise BadInput(f"{path}: not valid YAML ({shown(where, 120)})") from None


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


def each_stage(path: Path, stages: dict) -> Iterator[tuple[object, str, dict]]:
    """Each stage of a dvc.lock's or dvc.yaml's ``stages``: its name, where it is (for
    messages) and its mapping; ``BadInput`` for a stage that is not a mapping."""
    for stage_name, stage in stages.items():
        where = f"{path}: stage {shown(stage_name)}"
        if not isinstance(stage, dict):
            raise BadInput(f"{where} is {kind_of(stage)}, expected a mapping")
        yield stage_name, where, stage


def listed(stage: dict, key: str, where: str) -> list:
    """A stage's list field (outs, metrics, plots), empty if absent or null; ``BadInput``
    for anything but a list."""
    entries = stage.get(key)
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        raise BadInput(f"{where}: {key} is {kind_of(entries)}, expected a list")
    return entries


def read_lock(path: Path) -> dict[str, Locked]:
    """Every output of a dvc.lock, by path, each hash and path checked; ``BadInput`` on
    anything that is not a dvc.lock of DVC 3."""
    name = path.name
    fix = f"keep one side (`git checkout --theirs {name}`), then `dvc repro` updates it"
    raw = read_yaml_file(path, fix=fix)
    if raw is None or raw == {}:  # an empty file: no stage has run yet
        return {}
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: expected a mapping with schema and stages, found {kind_of(raw)}")
    if raw.get("schema") != "2.0":
        raise BadInput(
            f"{path}: schema {shown(raw.get('schema'))}, expected '2.0' (the dvc.lock that"
            " DVC 3 writes): run `dvc repro` to write it again"
        )
    stages = raw.get("stages")
    stages = {} if stages is None else stages
    if not isinstance(stages, dict):
        raise BadInput(f"{path}: stages is {kind_of(stages)}, expected a mapping by stage name")
    locked: dict[str, Locked] = {}
    for stage_name, where, stage in each_stage(path, stages):
        for out in listed(stage, "outs", where):
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
            if out_path in locked:
                raise BadInput(f"{where_out}: recorded twice")
            size = out.get("size")
            size = size if isinstance(size, int) and not isinstance(size, bool) else None
            locked[out_path] = Locked(str(stage_name), md5, size)
    return locked


def recorded_deps(path: Path) -> set[str]:
    """The deps (and params files) that a dvc.lock records, as paths; read after
    ``read_lock`` accepted the file, and what is not a list of deps is no dep."""
    raw = read_yaml_file(path, fix="")
    stages = raw.get("stages") if isinstance(raw, dict) else None
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


@dataclass(frozen=True)
class Declared:
    """An output as dvc.yaml declares it."""

    stage: str
    cached: bool  # False for `cache: false`: DVC keeps no copy in its cache


def read_declared(path: Path) -> dict[str, Declared]:
    """Every output (outs, metrics and plots) that dvc.yaml's stages declare, by path."""
    raw = read_yaml_file(path, fix="resolve the conflict first")
    stages = raw.get("stages") if isinstance(raw, dict) else None
    if not isinstance(stages, dict):
        raise BadInput(f"{path}: expected a mapping `stages:` of stage names")
    declared: dict[str, Declared] = {}
    for stage_name, where, stage in each_stage(path, stages):
        for key in UNSUPPORTED_STAGE_KEYS:
            if key in stage and not (key == "wdir" and stage[key] in (".", "./")):
                raise BadInput(f"{where} uses `{key}`, which verify does not expand")
        for kind in DECLARED_KINDS:
            for entry in listed(stage, kind, where):
                if isinstance(entry, dict) and len(entry) == 1:
                    [(name, options)] = entry.items()
                    options = options if isinstance(options, dict) else {}
                else:
                    name, options = entry, {}
                if isinstance(name, str) and "${" in name:
                    raise BadInput(
                        f"{where}: {kind} {shown(name)} is templated, which verify does not expand"
                    )
                out_path = project_path(name, f"{where}: {kind}")
                if out_path in declared:
                    raise BadInput(f"{where}: {out_path} declared twice")
                declared[out_path] = Declared(
                    str(stage_name), options.get("cache", True) is not False
                )
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


# --- hashing files ------------------------------------------------------------------------------


def file_md5(path: Path, within: tuple[Path, ...] = (), size: int | None = None) -> str:
    """The md5 of the regular file ``path`` (through symbolic links that stay ``within``
    these folders, when given); ``NotHashed`` says why not. Where ``size`` (dvc.lock's)
    is given and the file has another, a ``Resized`` says so without reading it."""
    try:
        with open_regular(path, within) as (fd, info):
            if size is not None and info.st_size != size:
                raise Resized(info.st_size, size)
            return digest(fd, path)
    except OSError as exc:
        raise NotHashed("unreadable", exc.strerror) from None


class Resized(Exception):
    """A file whose size is not dvc.lock's: different, with no need to hash it."""

    def __init__(self, actual: int, locked: int):
        super().__init__(actual, locked)
        self.actual, self.locked = actual, locked


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def listing_bytes(entries: list[dict[str, str]]) -> bytes:
    """A directory's listing as DVC 3 writes it into its ``.dir`` object and hashes it."""
    ordered = sorted(entries, key=lambda entry: entry["relpath"])
    return json.dumps(ordered, sort_keys=True).encode("utf-8")


def directory_md5(path: Path, within: tuple[Path, ...]) -> str:
    """The hash that DVC 3 records for the directory output ``path``: ``<md5>.dir``."""
    entries = []
    for folder, _, names in os.walk(path):
        for name in names:
            file = Path(folder) / name
            relpath = file.relative_to(path).as_posix()
            try:
                entries.append({"md5": file_md5(file, within), "relpath": relpath})
            except NotHashed as why:
                raise NotHashed(why.label, f"{relpath}: {why.detail or why.label}") from None
    return hashlib.md5(listing_bytes(entries)).hexdigest() + ".dir"


# --- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One line of the report; ``label`` is its first word (``identical``, ``missing``...)."""

    ok: bool
    text: str
    label: str = ""


def report(title: str, checks: list[Check]) -> bool:
    log.info("%s", title)
    for check in checks:
        log.info("  %s %s", "ok  " if check.ok else "FAIL", check.text)
    return all(check.ok for check in checks)


def _line(ok: bool, label: str, text: str) -> Check:
    return Check(ok, f"{label:<10} {text}", label)


# --- the outputs in the workspace ---------------------------------------------------------------


def check_outputs(root: Path, outputs: list[Output], within: tuple[Path, ...]) -> list[Check]:
    """Each output in the workspace under ``root`` against dvc.lock, and dvc.lock
    against dvc.yaml."""
    checks = []
    for out in outputs:
        if out.md5 is None:
            text = f"{out.path}: dvc.yaml declares it (stage {out.stage}), dvc.lock does not"
            checks.append(_line(False, "unlocked", text + " record it"))
            continue
        if not out.declared:
            text = f"{out.path}: dvc.lock records it (stage {out.locked_stage}), dvc.yaml"
            checks.append(_line(False, "undeclared", text + " declares no such output"))
            continue
        if out.locked_stage != out.stage:
            text = f"{out.path}: dvc.yaml declares it in stage {out.stage}, dvc.lock records"
            checks.append(_line(False, "unlocked", f"{text} it under {out.locked_stage}"))
            continue
        path = root / out.path
        try:
            if path.is_dir() and not path.is_symlink() and out.md5.endswith(".dir"):
                actual = directory_md5(path, within)
            else:
                actual = file_md5(path, within, size=out.size)
        except Resized as sizes:
            text = f"{out.path}: {sizes.actual} bytes, dvc.lock {sizes.locked} (not hashed)"
            checks.append(_line(False, "different", text))
            continue
        except NotHashed as why:
            checks.append(
                _line(False, why.label, out.path + (f": {why.detail}" if why.detail else ""))
            )
            continue
        if actual == out.md5:
            checks.append(_line(True, "identical", out.path))
        else:
            checks.append(
                _line(False, "different", f"{out.path}: md5 {actual}, dvc.lock {out.md5}")
            )
    return checks


# --- dvc.lock against the workspace's deps, params and commands --------------------------------


def lock_against_workspace(root: Path, lock_path: Path, outputs: list[Output]) -> list[Check]:
    """What DVC's own status finds changed since dvc.lock was written in the deps, params
    and commands (a dep that dvc.yaml has and dvc.lock does not record included; the
    outputs are this tool's own check, and a stage's output that another stage reads is
    one of them): a failing line each. Nothing for a lock that records no deps at all."""
    recorded = recorded_deps(lock_path)
    if not recorded:
        return []
    produced = {out.path for out in outputs}
    from dvc.exceptions import DvcException
    from dvc.lock import LockError
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            status = repo.status()
    except LockError:
        raise BadInput(
            "another dvc command is running in this project (it holds DVC's lock), and DVC"
            " cannot tell the project's status meanwhile: run verify once it ends"
        ) from None
    except DvcException as exc:
        raise BadInput(f"DVC cannot tell the project's status: {shown(str(exc), 200)}") from None
    checks = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):  # "changed command", "always changed"
                checks.append(_line(False, "changed", f"stage {stage}: {change}"))
                continue
            for dep, what in change.get("changed deps", {}).items():
                if dep in produced:  # the outputs' own check says it
                    continue
                if isinstance(what, dict):
                    what = ", ".join(f"{key} {value}" for key, value in what.items())
                checks.append(_line(False, "changed", f"stage {stage}: {dep} {what}"))
    return checks


# --- the DVC cache ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cache:
    """A local DVC cache: its directory, and where DVC 3 keeps objects by md5 in it."""

    root: Path
    objects: Path

    @property
    def quarantine(self) -> Path:
        return self.root / QUARANTINE

    def object_path(self, oid: str) -> Path:
        # Only a checked hash becomes a path: 32 hex digits cannot leave the cache.
        if not OUTPUT_HASH.fullmatch(oid):
            raise ValueError(f"not a DVC hash: {oid!r}")
        return self.objects / oid[:2] / oid[2:]


def move_aside(cache: Cache, oid: str) -> Path:
    """Move the object ``oid`` into the cache's quarantine folder; where it went.

    Both are inside the cache's directory, so this is a rename within its file system.
    It refuses (``OSError``) when the object's folder or the quarantine folder is a link
    to somewhere else, so that nothing outside the cache is ever moved, or moved into.
    """
    obj = cache.object_path(oid)
    root = cache.root.resolve()
    if obj.parent.resolve() != cache.objects.resolve() / oid[:2]:
        raise OSError(f"its folder leads to {obj.parent.resolve()}, outside the cache")
    cache.quarantine.mkdir(exist_ok=True)
    if cache.quarantine.is_symlink() or cache.quarantine.resolve().parent != root:
        raise OSError(f"{cache.quarantine} leads outside the cache")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside, n = cache.quarantine / f"{oid}.{stamp}", 0
    while aside.exists() or aside.is_symlink():
        n += 1
        aside = cache.quarantine / f"{oid}.{stamp}.{n}"
    os.rename(obj, aside)
    return aside


def read_listing(data: bytes, oid: str) -> list[tuple[str, str]]:
    """The (md5, relpath) entries of a ``.dir`` object's bytes, each checked."""
    try:
        entries = json.loads(data)
    except ValueError:
        entries = None
    if not isinstance(entries, list):
        raise BadInput(f"cache object {oid}: not a DVC directory listing")
    listed = []
    for entry in entries:
        md5 = entry.get("md5") if isinstance(entry, dict) else None
        relpath = entry.get("relpath") if isinstance(entry, dict) else None
        if not isinstance(md5, str) or not FILE_HASH.fullmatch(md5):
            raise BadInput(f"cache object {oid}: an entry's md5 {shown(md5)} is not 32 hex digits")
        listed.append((md5, project_path(relpath, f"cache object {oid}: an entry")))
    return listed


def check_object(cache: Cache, oid: str, names: list[str]) -> tuple[Check | None, bytes | None]:
    """Hash the object ``oid`` again (``names``: the outputs that use it): None if it is
    intact, and then for a ``.dir`` listing its bytes; else the line that says what it is."""
    obj = cache.object_path(oid)
    what = f"cache object of {', '.join(names)} ({obj})"
    try:
        actual = file_md5(obj, (cache.root.resolve(),))
    except NotHashed as why:
        fixes = {
            "outside": f"{why.detail}; DVC's objects are files of the cache: remove the"
            " link, and `dvc repro` rebuilds it",
            "missing": "not in the DVC cache: `dvc pull` fetches it, or `dvc repro` rebuilds it",
            "unreadable": f"{why.detail}: fix its permissions, or remove it and `dvc repro`"
            " rebuilds it",
            "not a file": f"{why.detail}, which DVC cannot check out: remove it, and"
            " `dvc repro` rebuilds it",
        }
        return _line(False, why.label, f"{what}: {fixes[why.label]}"), None
    if actual == oid.removesuffix(".dir"):
        if not oid.endswith(".dir"):
            return None, None
        try:
            with open_regular(obj, (cache.root.resolve(),)) as (fd, info):
                return None, os.read(fd, info.st_size + 1)
        except (OSError, NotHashed) as exc:
            return _line(False, "unreadable", f"{what}: {exc}"), None
    try:
        aside = move_aside(cache, oid)
    except OSError as exc:
        fix = f"could not be moved aside ({exc.strerror or exc}): delete it, and `dvc repro`"
        fix += " rebuilds it"
        return _line(False, "corrupt", f"{what} holds md5 {actual}, and {fix}"), None
    fix = f"moved to {aside}; `dvc repro` rebuilds it"
    return _line(False, "corrupt", f"{what} holds md5 {actual}: {fix}"), None


def check_cache(cache: Cache, outputs: list[Output]) -> list[Check]:
    """Hash again each cache object that dvc.lock names, and each file that its
    directories' listings name; move each corrupt one aside."""
    names: dict[str, list[str]] = {}
    for out in outputs:
        if out.md5 and out.cached:
            names.setdefault(out.md5, []).append(out.path)
    queue, checks, intact = list(names), [], 0
    for oid in queue:  # grows by the files of each intact listing
        check, listing = check_object(cache, oid, names[oid])
        if check:
            checks.append(check)
            continue
        intact += 1
        for md5, relpath in read_listing(listing, oid) if listing is not None else []:
            if md5 not in names:
                queue.append(md5)
            names.setdefault(md5, []).extend(f"{name}/{relpath}" for name in names[oid])
    checks.append(
        Check(True, f"intact     {intact} of {len(queue)} cache objects of dvc.lock, hashed again")
    )
    return checks


# --- the published numbers ------------------------------------------------------------------------


def check_numbers(losses: list[float], metrics: dict, version: published.Version) -> list[Check]:
    """The losses and accuracies against ``version``'s published ones, within the tolerances."""
    checks = []
    expected = version.losses
    if len(losses) != len(expected):
        checks.append(Check(False, f"losses: {len(losses)} iterations, published {len(expected)}"))
    else:
        gaps = [abs(a - b) for a, b in zip(losses, expected, strict=True)]
        # A NaN is never within tolerance, and max() would skip it.
        worst = math.nan if any(map(math.isnan, gaps)) else max(gaps)
        checks.append(
            Check(
                worst <= published.LOSS_TOLERANCE,
                f"losses: {len(losses)} iterations, largest difference from the published"
                f" {worst:.1e} (tolerance {published.LOSS_TOLERANCE:.0e})",
            )
        )
    tolerance = published.ACCURACY_TOLERANCE
    for key, number in version.accuracies.items():
        value = metrics.get(key)
        ok = isinstance(value, float) and math.isclose(value, number, abs_tol=tolerance)
        checks.append(Check(ok, f"{key}: {value} (published {number:f}, tolerance {tolerance})"))
    return checks


def published_version(files: Layout) -> tuple[published.Version | None, str]:
    """The published version that params.yaml describes, if any, and else how it differs
    from the nearest one, in one line; ``BadInput`` if params.yaml is invalid."""
    try:
        params = load_params(files.params)
    except UserError as exc:
        raise BadInput("; ".join(line.strip() for line in str(exc).splitlines())) from None
    except OSError as exc:
        raise BadInput(f"{files.params}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:  # not UTF-8
        raise BadInput(f"{files.params}: cannot read it ({shown(str(exc), 120)})") from None
    try:
        dataset = datasets.from_checksums(files.checksums)
    except UserError as exc:
        raise BadInput(shown(str(exc), 200)) from None
    if dataset is not datasets.MNIST:
        return None, (
            f"{files.checksums.relative_to(files.root)} names another data set than MNIST,"
            " on which both versions' numbers were published"
        )
    version = published.matching(params)
    if version:
        return version, ""
    nearest, differences = published.nearest(params)
    return None, f"differences from {nearest.title}: " + "; ".join(differences)


def check_published_numbers(files: Layout, version: published.Version) -> list[Check]:
    """The numbers of the outputs on disk against ``version``'s published ones."""
    try:
        losses = formats.read_loss(files.loss_csv)[1]
        metrics = formats.read_metrics(files.metrics)
    except FileNotFoundError as exc:
        return [_line(False, "missing", f"{exc.filename}: run `dvc repro` to make it")]
    except OSError as exc:
        return [_line(False, "unreadable", f"{exc.filename}: {exc.strerror}")]
    except (ValueError, KeyError, TypeError, csv.Error) as exc:
        return [_line(False, "unreadable", f"the outputs' numbers: {shown(str(exc), 120)}")]
    if not isinstance(metrics, dict):
        return [_line(False, "unreadable", f"{files.metrics}: {kind_of(metrics)}, not a mapping")]
    return check_numbers(losses, metrics, version)


def numbers_failed(numbers: list[Check]) -> str:
    """What the verdict says of numbers that did not hold."""
    if any(check.label in ("missing", "unreadable") for check in numbers):
        return "the numbers cannot be read from the outputs (`dvc repro` writes them)"
    return "the numbers differ from the published ones"


def report_published_numbers(files: Layout, version: published.Version) -> str | None:
    """Check the outputs' numbers against ``version``'s published ones and report them,
    under the one title that names the version; None if they hold, else what a verdict
    says of them."""
    numbers = check_published_numbers(files, version)
    if report(f"the published numbers of {version.title}:", numbers):
        return None
    return numbers_failed(numbers)


# --- the verdicts ---------------------------------------------------------------------------


def bytes_verdict(files: Layout, cache_ok: bool, cache_note: str, *, numbered: bool) -> bool:
    """The verdict where every output is dvc.lock's bytes: the published numbers too, of
    the version that params.yaml describes, or a line saying that only the bytes count.
    ``numbered``: the outputs checked include loss.csv and metrics.json, which hold them."""
    if not numbered:
        log.info("verdict: every output is dvc.lock's bytes%s", cache_note)
        return cache_ok
    version, differences = published_version(files)
    if version is None:
        log.info(
            "verdict: every output is dvc.lock's bytes (no numbers are published for these"
            " params, so the bytes alone are checked: %s)%s",
            differences,
            cache_note,
        )
        return cache_ok
    failure = report_published_numbers(files, version)
    if failure is None:
        log.info(
            "verdict: every output is dvc.lock's bytes, and they hold the published numbers"
            " of %s%s",
            version.title,
            cache_note,
        )
        return cache_ok
    log.info(
        "verdict: every output is dvc.lock's bytes, but %s of %s%s",
        failure,
        version.title,
        cache_note,
    )
    return False


def verify(files: Layout, lock_path: Path, cache: Cache, *, strict: bool) -> bool:
    """Run every check on the project ``files`` and report it; True if the reproduction holds.

    The outputs are compared with ``lock_path``; the cache is checked against the
    workspace's dvc.lock, whose objects are the ones that ``dvc checkout`` would use (those
    of another lock, such as the committed one on a CPU whose bytes differ, may never have
    been made here).
    """
    root = files.root
    declared = read_declared(root / "dvc.yaml")
    outputs = reconcile(declared, read_lock(lock_path))
    if not outputs:
        raise BadInput(
            "dvc.yaml declares no output and dvc.lock records none: there is nothing to"
            " check, and checking nothing is no pass"
        )
    workspace_lock = root / "dvc.lock"
    if lock_path.resolve() == workspace_lock.resolve():
        cache_ok = report("DVC cache:", check_cache(cache, outputs))
        # After the cache's check: DVC's status deletes a corrupt object that it meets,
        # which the check reports and keeps aside.
        changed = lock_against_workspace(root, lock_path, outputs)
        if changed:
            report("what dvc.lock records against the workspace (DVC's status):", changed)
    else:
        changed = []
        cached = reconcile(declared, read_lock(workspace_lock))
        cache_ok = report("DVC cache, for the workspace's dvc.lock:", check_cache(cache, cached))
    within = (root.resolve(), cache.root.resolve())
    checks = check_outputs(root, outputs, within)
    report(f"outputs of dvc.yaml against {lock_path.name}:", checks)
    cache_note = "" if cache_ok else "; and the DVC cache fails its check (above)"
    failed = [check for check in checks if not check.ok]
    if changed:
        log.info(
            "verdict: dvc.lock no longer describes the workspace: %s (`dvc status` shows"
            " it; `dvc repro` runs what changed, or `git checkout` undoes the edit)%s",
            "; ".join(check.text.removeprefix("changed").strip() for check in changed),
            cache_note,
        )
        return False
    if not failed:
        holders = {files.loss_csv, files.metrics}
        numbered = holders <= {root / output.path for output in outputs}
        return bytes_verdict(files, cache_ok, cache_note, numbered=numbered)
    if any(check.label != "different" for check in failed):
        counts: dict[str, int] = {}
        for check in failed:
            counts[check.label] = counts.get(check.label, 0) + 1
        log.info(
            "verdict: %s of %d outputs: every output that dvc.yaml declares must be in the"
            " workspace and in dvc.lock (`dvc repro` writes both)%s",
            ", ".join(f"{n} {label}" for label, n in counts.items()),
            len(checks),
            cache_note,
        )
        return False
    reason = cpu.why_not_pinnable_here()
    if reason is None:
        log.info(
            "verdict: %d of %d outputs differ from dvc.lock on a CPU that runs the pinned"
            " code paths, where a reproduction gives dvc.lock's bytes%s",
            len(failed),
            len(checks),
            cache_note,
        )
        return False
    if strict:
        log.info(
            "verdict: %d of %d outputs differ from dvc.lock, and --strict requires its bytes"
            " (%s, so the pinned code paths cannot run here)%s",
            len(failed),
            len(checks),
            reason,
            cache_note,
        )
        return False
    version, differences = published_version(files)
    if version is None:
        log.info(
            "verdict: outputs differ from dvc.lock, and no numbers are published for these"
            " params (%s)%s",
            differences,
            cache_note,
        )
        return False
    failure = report_published_numbers(files, version)
    if failure is None:
        log.info(
            "verdict: outputs differ from dvc.lock in their bytes, numbers of %s within"
            " tolerance (as expected where the CPU cannot run the pinned code paths: %s)%s",
            version.title,
            reason,
            cache_note,
        )
        return cache_ok
    log.info("verdict: outputs differ from dvc.lock, and %s%s", failure, cache_note)
    return False


def verify_numbers(files: Layout) -> bool:
    """Only the published numbers of the outputs on disk, not their bytes, of the version
    that params.yaml describes: True if they hold."""
    version, differences = published_version(files)
    if version is None:
        raise BadInput(
            f"--numbers: no numbers are published for these params ({differences}); the"
            " default params.yaml is in git (`git checkout params.yaml`), and `make gallery`"
            " runs the gallery's version"
        )
    failure = report_published_numbers(files, version)
    if failure is None:
        log.info("verdict: the published numbers of %s hold, within tolerance", version.title)
        return True
    log.info("verdict: %s", failure)
    return False


def dvc_cache(root: Path) -> Cache:
    """The local DVC cache of the project at ``root``, wherever DVC's config puts it."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            objects, legacy = repo.cache.local, repo.cache.legacy
    except DvcException as exc:
        raise BadInput(f"DVC cannot open the project at {root}: {shown(str(exc), 200)}") from None
    if objects is None or objects.fs.protocol != "local":
        raise BadInput(f"{root}: DVC has no local cache here, which is what verify checks")
    cache = Cache(root=Path(legacy.path), objects=Path(objects.path))
    folder = cache.root.resolve()
    if root.resolve().is_relative_to(folder):
        raise BadInput(
            f"DVC's cache folder {folder} holds the project itself: `dvc cache dir` should"
            " name a folder of its own (the default is .dvc/cache)"
        )
    return cache


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code: 0 the reproduction holds, 1 it does not,
    2 the input cannot be checked, 130 stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.verify",
        description=__doc__.split("\n\n")[0],
        epilog="exit status: 0 the reproduction holds, 1 it does not, 2 the input cannot be"
        " checked (one line says why)",
    )
    parser.add_argument(
        "--lock",
        type=Path,
        help="the dvc.lock to compare with (default: the workspace's)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--strict",
        action="store_true",
        help="fail unless every output is dvc.lock's bytes, even on a CPU that cannot run the"
        " pinned code paths",
    )
    mode.add_argument(
        "--numbers",
        action="store_true",
        help="check only the published numbers of the outputs on disk (of the version that"
        " params.yaml describes), not their"
        " bytes (for CPUs whose bytes legitimately differ)",
    )
    args = parser.parse_args(argv)
    if args.numbers and args.lock:
        parser.error("--numbers compares no bytes: it takes no --lock")
    files = paths.PROJECT
    try:
        if args.numbers:
            passed = verify_numbers(files)
        else:
            lock = args.lock or files.root / "dvc.lock"
            passed = verify(files, lock, dvc_cache(files.root), strict=args.strict)
    except BadInput as exc:
        log.error("error: %s", exc)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        log.error(
            "stopped: verify did not finish; a corrupt object it moved is in the cache's %s/",
            QUARANTINE,
        )
        return EXIT_STOPPED
    return EXIT_PASSED if passed else EXIT_FAILED


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    sys.exit(main())

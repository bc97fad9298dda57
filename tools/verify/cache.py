"""The DVC cache against its own hashes: every object that dvc.lock names, hashed again,
and a corrupt one moved aside inside the cache, so that ``dvc repro`` rebuilds it."""

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline import dvc_api
from tools.verify.files import NotHashed, file_md5, open_regular
from tools.verify.lock import OUTPUT_HASH, Output, project_path
from tools.verify.report import BadInput, Check, labelled, shown

FILE_HASH = re.compile(r"[0-9a-f]{32}")

# Where corrupt objects go, inside the cache's own directory: the same file system, and
# a name that DVC never reads as an object (those sit in two-character folders).
QUARANTINE = "corrupt"


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


def dvc_cache(root: Path) -> Cache:
    """The local DVC cache of the project at ``root``, wherever DVC's config puts it."""
    try:
        found = dvc_api.local_cache(root)
    except dvc_api.DvcError as exc:
        raise BadInput(f"DVC cannot open the project at {root}: {exc}") from None
    if found is None:
        raise BadInput(f"{root}: DVC has no local cache here, which is what verify checks")
    cache = Cache(root=found[0], objects=found[1])
    folder = cache.root.resolve()
    if root.resolve().is_relative_to(folder):
        raise BadInput(
            f"DVC's cache folder {folder} holds the project itself: `dvc cache dir` should"
            " name a folder of its own (the default is .dvc/cache)"
        )
    return cache


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
        return labelled(False, why.label, f"{what}: {fixes[why.label]}"), None
    if actual == oid.removesuffix(".dir"):
        if not oid.endswith(".dir"):
            return None, None
        try:
            with open_regular(obj, (cache.root.resolve(),)) as (fd, info):
                return None, os.read(fd, info.st_size + 1)
        except (OSError, NotHashed) as exc:
            return labelled(False, "unreadable", f"{what}: {exc}"), None
    try:
        aside = move_aside(cache, oid)
    except OSError as exc:
        fix = f"could not be moved aside ({exc.strerror or exc}): delete it, and `dvc repro`"
        fix += " rebuilds it"
        return labelled(False, "corrupt", f"{what} holds md5 {actual}, and {fix}"), None
    fix = f"moved to {aside}; `dvc repro` rebuilds it"
    return labelled(False, "corrupt", f"{what} holds md5 {actual}: {fix}"), None


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

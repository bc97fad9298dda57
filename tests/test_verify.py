"""verify (`make verify`): it never says "fine" when a reproduction is not, never moves
anything outside the DVC cache, and says what is wrong with its input in one line.

Most tests run ``tools.verify.command.main`` on a tiny fake project under tmp_path: the
project's own dvc.yaml and params.yaml, a few bytes for each output (loss.csv and metrics.json hold
the published numbers), a dvc.lock of their md5s and a DVC cache of their copies.
"""

import errno
import hashlib
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ruamel.yaml import YAML

from pipeline import cpu, formats, paths, published
from pipeline.dvc_api import apply_overrides, entry_paths, read_yaml
from pipeline.paths import Layout
from pipeline.published import EXAMPLE_2017, GALLERY_2021
from tests import machines
from tests.project import dvc_stages
from tools.verify import command
from tools.verify import files as verify_files
from tools.verify.cache import QUARANTINE
from tools.verify.lock import MAX_YAML_BYTES, recorded_deps

NOT_PINNABLE = "this CPU is aarch64, not x86-64"


def dvc_dir_hash(files: dict[str, bytes]) -> tuple[str, bytes]:
    """DVC's own hash of a directory holding ``files``, and its listing object's bytes."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for relpath, content in files.items():
        md5 = hashlib.md5(content).hexdigest()
        tree.add(tuple(relpath.split("/")), Meta(), HashInfo("md5", md5))
    tree.digest()
    return tree.oid, tree.as_bytes()


def write_numbers(files: Layout, version: published.Version) -> None:
    """loss.csv and metrics.json with ``version``'s published numbers."""
    formats.write_loss(files.loss_csv, list(enumerate(version.losses, 1)))
    final = {"final_loss": version.losses[-1], "iterations": len(version.losses)}
    formats.write_metrics(files.metrics, version.accuracies | final)


def set_version(params: Path, version: published.Version) -> None:
    """Write ``version``'s settings into the params.yaml at ``params`` with DVC's own code
    for ``dvc exp run -S`` (``published.overrides``, as ``make gallery`` passes them)."""
    if overrides := published.overrides(version):
        apply_overrides(params, overrides)


def dump_yaml(data, path: Path) -> None:
    """Write ``data`` as DVC writes dvc.lock (ruamel.yaml's round trip, block style)."""
    yaml = YAML()
    yaml.default_flow_style = False
    with path.open("w", encoding="utf-8") as f:
        yaml.dump(data, f)


@dataclass
class FakeProject:
    """A project that verify checks: its files, lock, cache, and verify's answer."""

    root: Path
    cache: Path  # the DVC cache's directory
    caplog: pytest.LogCaptureFixture

    @property
    def files(self) -> Layout:
        return Layout.under(self.root)

    @property
    def lock_path(self) -> Path:
        return self.root / "dvc.lock"

    def lock(self) -> dict:
        return read_yaml(self.lock_path)

    def write_lock(self, lock: dict) -> None:
        dump_yaml(lock, self.lock_path)

    def locked_md5(self, output: str) -> str:
        return next(
            out["md5"]
            for stage in self.lock()["stages"].values()
            for out in stage["outs"]
            if out["path"] == output
        )

    def object(self, md5: str) -> Path:
        return self.cache / "files" / "md5" / md5[:2] / md5[2:]

    def run(self, *argv: str) -> tuple[int, list[str]]:
        """verify's exit code, and the lines it logged."""
        self.caplog.clear()
        try:
            code = command.main(list(argv))
        except SystemExit as exc:
            code = exc.code
        lines = [r.getMessage() for r in self.caplog.records if r.name == "tools.verify"]
        return code or 0, lines


def build_project(root: Path, contents: dict[str, bytes | dict[str, bytes]]) -> None:
    """Write ``contents`` (a directory output is a dict of its files), the dvc.lock that
    DVC would record for them by root's dvc.yaml, and a DVC cache holding them."""
    cache = root / ".dvc" / "cache" / "files" / "md5"

    def store(content: bytes) -> str:
        md5 = hashlib.md5(content).hexdigest()
        (cache / md5[:2]).mkdir(parents=True, exist_ok=True)
        (cache / md5[:2] / md5[2:]).write_bytes(content)
        return md5

    stages = {}
    for name, stage in dvc_stages(root).items():
        outs = []
        for kind in ("outs", "metrics", "plots"):
            for path in entry_paths(stage.get(kind)):
                content = contents[path]
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, dict):
                    for relpath, data in content.items():
                        (root / path / relpath).parent.mkdir(parents=True, exist_ok=True)
                        (root / path / relpath).write_bytes(data)
                        store(data)
                    md5, listing = dvc_dir_hash(content)
                    (cache / md5[:2]).mkdir(parents=True, exist_ok=True)
                    (cache / md5[:2] / md5[2:]).write_bytes(listing)
                    size = sum(map(len, content.values()))
                else:
                    (root / path).write_bytes(content)
                    md5, size = store(content), len(content)
                outs.append({"path": path, "hash": "md5", "md5": md5, "size": size})
        stages[name] = {"cmd": stage["cmd"], "outs": sorted(outs, key=lambda o: o["path"])}
    dump_yaml({"schema": "2.0", "stages": stages}, root / "dvc.lock")


@pytest.fixture
def fake(tmp_path, monkeypatch, caplog):
    """A factory of fake projects at tmp_path/project; verify runs on the last one, on a
    CPU that runs the pinned code paths unless a test says otherwise."""
    caplog.set_level(logging.INFO, logger="tools.verify")
    monkeypatch.setattr(cpu, "why_not_pinnable_here", lambda: None)

    def make(
        dvc_yaml: str | None = None,
        contents: dict | None = None,
        *,
        version: published.Version = EXAMPLE_2017,
        numbers_of: published.Version | None = None,
    ) -> FakeProject:
        """``version``'s params; the outputs hold ``numbers_of``'s numbers (default: its)."""
        root = tmp_path / "project"
        (root / ".dvc").mkdir(parents=True)
        (root / ".dvc" / "config").write_text("[core]\n    no_scm = true\n")
        shutil.copyfile(paths.PROJECT.params, root / "params.yaml")
        set_version(root / "params.yaml", version)
        (root / "data").mkdir()
        shutil.copyfile(paths.PROJECT.checksums, root / "data" / "mnist.sha256")
        if dvc_yaml is None:
            shutil.copyfile(paths.ROOT / "dvc.yaml", root / "dvc.yaml")
            files = Layout.under(root)
            files.loss_csv.parent.mkdir(parents=True)
            write_numbers(files, numbers_of or version)
            numbers = {
                "outputs/loss.csv": files.loss_csv.read_bytes(),
                "outputs/metrics.json": files.metrics.read_bytes(),
            }
            contents = {path: f"the bytes of {path}\n".encode() for path in declared(root)}
            contents |= numbers
        else:
            (root / "dvc.yaml").write_text(dvc_yaml)
        build_project(root, contents)
        # verify reads the project where every module does: paths.PROJECT (and ROOT).
        monkeypatch.setattr(paths, "ROOT", root)
        monkeypatch.setattr(paths, "PROJECT", Layout.under(root))
        return FakeProject(root, root / ".dvc" / "cache", caplog)

    return make


@pytest.fixture
def project(fake) -> FakeProject:
    """The project's own dvc.yaml, its outputs in the workspace, the lock and the cache."""
    return fake()


def declared(root: Path) -> dict[str, str]:
    """Each output that root's dvc.yaml declares, and its stage."""
    return {
        path: name
        for name, stage in dvc_stages(root).items()
        for kind in ("outs", "metrics", "plots")
        for path in entry_paths(stage.get(kind))
    }


def locked_out(lock: dict, stage: str, path: str) -> dict:
    """The entry of ``path`` among ``stage``'s outs in the parsed ``lock``."""
    [out] = [out for out in lock["stages"][stage]["outs"] if out["path"] == path]
    return out


# What dvc.yaml declares: each stage's outputs, folders included.
N_OUTPUTS = sum(len(files) for files in paths.OUTPUTS.values())


def failures(lines: list[str]) -> list[str]:
    return [line.strip().removeprefix("FAIL ") for line in lines if line.startswith("  FAIL")]


def verdict(lines: list[str]) -> str:
    [line] = [line for line in lines if line.startswith("verdict: ")]
    return line


def one_error(code: int, lines: list[str]) -> str:
    """The one line of a refusal: exit 2 and nothing else said."""
    assert code == 2, lines
    [line] = lines
    assert line.startswith("error: ") and "\n" not in line
    return line


def test_a_good_reproduction_passes(project):
    code, lines = project.run()
    assert code == 0, lines
    assert failures(lines) == []
    assert (
        f"  ok   intact     {N_OUTPUTS} of {N_OUTPUTS} cache objects of dvc.lock, hashed again"
        in lines
    )
    assert sum(line.startswith("  ok   identical  ") for line in lines) == N_OUTPUTS
    assert verdict(lines) == (
        "verdict: every output is dvc.lock's bytes, and they hold the published numbers of"
        " scikit-learn's example as published in 2017"
    )


# --- item 1: a dvc.lock cannot make verify touch anything outside the cache -------------------


def walk_to(project: FakeProject, victim: Path) -> str:
    """An md5 of ``../`` steps to ``victim``, both as a cache object's path (``<objects>/
    <md5[:2]>/<md5[2:]>``: the join makes it absolute) and as a name in a folder three
    levels into the project (``.dvc/tmp/corrupt/<md5>.<time>``, where verify once moved
    corrupt objects): verify used to rename the victim beside itself."""
    objects = project.cache / "files" / "md5"
    depth = len((project.root / ".dvc" / "tmp" / "corrupt").parts) - 1
    md5 = "../" * depth + victim.relative_to("/").as_posix()
    assert os.path.samefile(objects / md5[:2] / md5[2:], victim)
    return md5


def test_an_md5_that_walks_out_of_the_cache_moves_nothing(project, tmp_path):
    victim = tmp_path / "victim" / "important.txt"  # a folder beside the project
    victim.parent.mkdir()
    victim.write_text("keep me\n")
    lock = project.lock()
    locked_out(lock, "train", "outputs/loss.csv")["md5"] = walk_to(project, victim)
    project.write_lock(lock)

    line = one_error(*project.run())
    assert re.fullmatch(
        r"error: .*dvc\.lock: stage train, out outputs/loss\.csv: md5 (\.\./)+\S+"
        r" is not 32 lowercase hex digits \(nor DVC's <32 hex digits>\.dir\)",
        line,
    ), line
    assert victim.read_text() == "keep me\n"
    assert sorted(p.name for p in victim.parent.iterdir()) == ["important.txt"]
    assert not (project.cache / QUARANTINE).exists()
    assert not (project.root / ".dvc" / "tmp" / "corrupt").exists()


@pytest.mark.parametrize(
    "md5",
    [
        "3486076A850748E6FB4DFB9B3A38FC33",  # upper case
        "3486076a850748e6fb4dfb9b3a38fc3",  # 31 digits
        "3486076a850748e6fb4dfb9b3a38fc33a",  # 33
        "3486076a850748e6fb4dfb9b3a38fc33.DIR",
        "3486076a850748e6fb4dfb9b3a38fc33/../../x",
        "/etc/hostname",
        "",
        12345678901234567890123456789012,  # YAML reads it as a number
        None,
    ],
)
def test_an_md5_that_is_not_dvcs_is_refused(project, md5):
    lock = project.lock()
    locked_out(lock, "train", "outputs/model.joblib")["md5"] = md5
    project.write_lock(lock)
    line = one_error(*project.run())
    assert "stage train, out outputs/model.joblib: md5 " in line
    assert line.endswith("is not 32 lowercase hex digits (nor DVC's <32 hex digits>.dir)")


@pytest.mark.parametrize(
    "path", ["../victim/important.txt", "outputs/../../victim/important.txt", "{victim}"]
)
@pytest.mark.parametrize("where", ["dvc.lock", "dvc.yaml"])
def test_an_output_path_outside_the_project_is_refused(project, tmp_path, path, where):
    victim = tmp_path / "victim" / "important.txt"
    victim.parent.mkdir()
    victim.write_text("keep me\n")
    path = path.format(victim=victim)
    if where == "dvc.lock":
        lock = project.lock()
        locked_out(lock, "train", "outputs/loss.csv")["path"] = path
        project.write_lock(lock)
    else:
        dvc_yaml = project.root / "dvc.yaml"
        dvc_yaml.write_text(dvc_yaml.read_text().replace("- outputs/model.joblib", f"- {path}"))
    line = one_error(*project.run())
    assert f"{where}: stage train" in line
    assert line.endswith(
        f"path {path} is outside the project; outputs are paths relative to the project's"
        " root, without '..'"
    )


def test_an_output_that_links_out_of_the_project_is_not_read(project, tmp_path):
    victim = tmp_path / "victim" / "important.txt"
    victim.parent.mkdir()
    victim.write_text("secret\n")
    weights_png = project.files.weights_png
    weights_png.unlink()
    weights_png.symlink_to(victim)
    # DVC's symlink cache type links outputs into the cache: that is inside.
    loss_png = project.files.loss_png
    loss_png.unlink()
    loss_png.symlink_to(project.object(project.locked_md5("outputs/loss.png")))

    code, lines = project.run()
    assert code == 1
    assert failures(lines) == [
        f"outside    outputs/weights.png: it leads to {victim}, outside the project and its"
        " DVC cache"
    ]
    assert "  ok   identical  outputs/loss.png" in lines
    assert verdict(lines).startswith(f"verdict: 1 outside of {N_OUTPUTS} outputs: ")


def test_a_cache_folder_that_links_out_of_the_cache_is_not_moved_from(project, tmp_path):
    md5 = project.locked_md5("outputs/model.joblib")
    folder = project.object(md5).parent
    victims = tmp_path / "victims"
    shutil.copytree(folder, victims)
    (victims / md5[2:]).write_text("not the model\n")  # a file of someone else's
    shutil.rmtree(folder)
    folder.symlink_to(victims)

    code, lines = project.run()
    assert code == 1
    # (other objects may share the folder, and lead outside with it)
    assert all(line.startswith("outside    cache object of ") for line in failures(lines))
    [line] = [line for line in failures(lines) if "outputs/model.joblib" in line]
    # Not hashed, not moved: a file outside the cache is none of verify's business.
    assert line == (
        f"outside    cache object of outputs/model.joblib ({folder / md5[2:]}): it leads to"
        f" {victims / md5[2:]}, outside the project and its DVC cache; DVC's objects are"
        " files of the cache: remove the link, and `dvc repro` rebuilds it"
    )
    assert (victims / md5[2:]).read_text() == "not the model\n"


# --- item 2: verify passes nothing that it should not -------------------------------------------


def keep_only(stages: list[str]):
    def edit(lock: dict) -> dict:
        lock["stages"] = {name: lock["stages"][name] for name in stages}
        return lock

    return edit


@pytest.mark.parametrize(
    "edit, unlocked",
    [
        (lambda lock: None, N_OUTPUTS),  # an empty dvc.lock
        (lambda lock: {"schema": "2.0", "stages": {}}, N_OUTPUTS),
        (keep_only(["fetch_and_scale"]), N_OUTPUTS - 2),  # names 2 of the outputs
        (keep_only(["fetch_and_scale", "train"]), len(paths.OUTPUTS["visualize"])),
    ],
    ids=["empty", "no stages", "fetch_and_scale's", "all but visualize's"],
)
def test_the_lock_must_record_every_output_that_dvc_yaml_declares(project, edit, unlocked):
    lock = edit(project.lock())
    if lock is None:
        project.lock_path.write_text("")
    else:
        project.write_lock(lock)
    code, lines = project.run()
    assert code == 1
    stages = (lock or {}).get("stages", {}).values()
    recorded = {out["path"] for stage in stages for out in stage["outs"]}
    assert failures(lines) == [
        f"unlocked   {path}: dvc.yaml declares it (stage {stage}), dvc.lock does not record it"
        for path, stage in sorted(declared(project.root).items())
        if path not in recorded
    ]
    assert len(failures(lines)) == unlocked
    assert verdict(lines) == (
        f"verdict: {unlocked} unlocked of {N_OUTPUTS} outputs: every output that dvc.yaml declares"
        " must be in the workspace and in dvc.lock (`dvc repro` writes both)"
    )


def test_an_output_that_dvc_yaml_does_not_declare_fails(project):
    extra = project.root / "outputs" / "extra.bin"
    extra.write_bytes(b"extra\n")
    lock = project.lock()
    md5 = hashlib.md5(b"extra\n").hexdigest()
    lock["stages"]["train"]["outs"].append({"path": "outputs/extra.bin", "hash": "md5", "md5": md5})
    project.write_lock(lock)
    project.object(md5).parent.mkdir(exist_ok=True)
    project.object(md5).write_bytes(b"extra\n")
    code, lines = project.run()
    assert code == 1
    assert failures(lines) == [
        "undeclared outputs/extra.bin: dvc.lock records it (stage train), dvc.yaml declares no"
        " such output"
    ]


@pytest.mark.parametrize("reason", [None, NOT_PINNABLE], ids=["pinned", "not pinnable"])
def test_missing_outputs_fail_on_every_cpu(project, monkeypatch, reason):
    monkeypatch.setattr(cpu, "why_not_pinnable_here", lambda: reason)
    for png in ("weights_png", "loss_png", "misclassified_png"):
        getattr(project.files, png).unlink()
    code, lines = project.run()
    assert code == 1
    assert failures(lines) == [
        "missing    outputs/loss.png",
        "missing    outputs/misclassified.png",
        "missing    outputs/weights.png",
    ]
    assert verdict(lines).startswith(f"verdict: 3 missing of {N_OUTPUTS} outputs: ")


@pytest.mark.parametrize(
    "reason, strict, expected_code, expected_verdict",
    [
        (
            None,
            False,
            1,
            f"verdict: 1 of {N_OUTPUTS} outputs differ from dvc.lock on a CPU that runs the"
            " pinned code paths, where a reproduction gives dvc.lock's bytes",
        ),
        (
            NOT_PINNABLE,
            False,
            0,
            "verdict: outputs differ from dvc.lock in their bytes, numbers of scikit-learn's"
            " example as published in 2017 within tolerance (as expected where the CPU cannot"
            f" run the pinned code paths: {NOT_PINNABLE})",
        ),
        (
            NOT_PINNABLE,
            True,
            1,
            f"verdict: 1 of {N_OUTPUTS} outputs differ from dvc.lock, and --strict requires its"
            f" bytes ({NOT_PINNABLE}, so the pinned code paths cannot run here)",
        ),
    ],
    ids=["pinned", "not pinnable", "not pinnable, --strict"],
)
def test_the_tolerance_verdict_applies_only_where_the_pin_cannot_run(
    project, monkeypatch, reason, strict, expected_code, expected_verdict
):
    monkeypatch.setattr(cpu, "why_not_pinnable_here", lambda: reason)
    project.files.weights_png.write_bytes(b"other last bits\n")
    code, lines = project.run(*(["--strict"] if strict else []))
    assert code == expected_code
    assert [line.split(":")[0] for line in failures(lines)] == ["different  outputs/weights.png"]
    assert verdict(lines) == expected_verdict


def test_another_lock_is_compared_and_the_cache_checked_for_the_workspaces(project, monkeypatch):
    """As .ci/run on a CPU whose bytes differ: the outputs against the committed lock, the
    cache against the workspace's dvc.lock, which the reproduction here wrote."""
    monkeypatch.setattr(cpu, "why_not_pinnable_here", lambda: NOT_PINNABLE)
    committed = project.lock()
    ours = project.locked_md5("outputs/weights.png")
    theirs = hashlib.md5(b"the committed bytes\n").hexdigest()  # never made, nor cached, here
    [out] = [o for o in committed["stages"]["visualize"]["outs"] if o["md5"] == ours]
    out["md5"] = theirs
    (project.root / ".dvc" / "tmp").mkdir(exist_ok=True)
    other = project.root / ".dvc" / "tmp" / "committed-dvc.lock"
    dump_yaml(committed, other)

    code, lines = project.run("--lock", str(other))
    assert code == 0, lines
    assert lines[:2] == [
        "DVC cache, for the workspace's dvc.lock:",
        f"  ok   intact     {N_OUTPUTS} of {N_OUTPUTS} cache objects of dvc.lock, hashed again",
    ]
    assert f"outputs of dvc.yaml against {other.name}:" in lines
    assert failures(lines) == [f"different  outputs/weights.png: md5 {ours}, dvc.lock {theirs}"]
    assert verdict(lines).startswith("verdict: outputs differ from dvc.lock in their bytes,")


def test_outputs_that_differ_fail_where_the_numbers_do(project, monkeypatch):
    monkeypatch.setattr(cpu, "why_not_pinnable_here", lambda: NOT_PINNABLE)
    losses = list(enumerate(EXAMPLE_2017.losses, 1))
    losses[4] = (5, losses[4][1] + 2e-8)
    formats.write_loss(project.files.loss_csv, losses)
    code, lines = project.run()
    assert code == 1
    assert "  FAIL losses: 10 iterations, largest difference from the published 2.0e-08" in [
        line.split(" (tolerance")[0] for line in lines
    ]
    assert verdict(lines) == (
        "verdict: outputs differ from dvc.lock, and the numbers differ from the published ones"
    )


def make_unreadable(target: Path, monkeypatch) -> None:
    """Have verify's reads of ``target`` fail with EACCES (the tests run as root, whom
    chmod 000 does not stop)."""
    real_digest = verify_files.digest

    def digest(fd, path):
        if path == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_digest(fd, path)

    monkeypatch.setattr(verify_files, "digest", digest)


def break_object(obj: Path, how: str, monkeypatch) -> None:
    if how == "deleted":
        obj.unlink()
    elif how == "a directory":
        obj.unlink()
        obj.mkdir()
    elif how == "unreadable":
        make_unreadable(obj, monkeypatch)
    elif how == "corrupt":
        obj.write_bytes(b"not the model\n")


@pytest.mark.parametrize(
    "how, expected",
    [
        ("deleted", "missing    {what}: not in the DVC cache: `dvc pull` fetches it, or"
         " `dvc repro` rebuilds it"),
        ("a directory", "not a file {what}: a directory, which DVC cannot check out: remove"
         " it, and `dvc repro` rebuilds it"),
        ("unreadable", "unreadable {what}: Permission denied: fix its permissions, or remove"
         " it and `dvc repro` rebuilds it"),
        ("corrupt", "corrupt    {what} holds md5 {bad}: moved to {aside}; `dvc repro`"
         " rebuilds it"),
    ],
)  # fmt: skip
def test_each_cache_object_is_classified(project, monkeypatch, how, expected):
    obj = project.object(project.locked_md5("outputs/model.joblib"))
    break_object(obj, how, monkeypatch)
    code, lines = project.run()
    assert code == 1
    quarantined = sorted((project.cache / "corrupt").glob("*"))
    [failure] = failures(lines)
    assert failure == expected.format(
        what=f"cache object of outputs/model.joblib ({obj})",
        bad=hashlib.md5(b"not the model\n").hexdigest(),
        aside=quarantined[0] if quarantined else None,
    )
    assert (
        f"  ok   intact     {N_OUTPUTS - 1} of {N_OUTPUTS} cache objects of dvc.lock, hashed again"
        in lines
    )
    assert verdict(lines) == (
        "verdict: every output is dvc.lock's bytes, and they hold the published numbers of"
        " scikit-learn's example as published in 2017; and the DVC cache fails its check"
        " (above)"
    )
    if how == "corrupt":
        assert not obj.exists()
        assert [p.read_bytes() for p in quarantined] == [b"not the model\n"]
        assert re.fullmatch(rf"{obj.parent.name}{obj.name}\.\d{{8}}T\d{{6}}", quarantined[0].name)


def test_an_unreadable_output_is_reported_as_unreadable(project, monkeypatch):
    make_unreadable(project.files.model, monkeypatch)
    code, lines = project.run()
    assert code == 1
    assert failures(lines) == ["unreadable outputs/model.joblib: Permission denied"]
    assert not any("wrote no output" in line or "writing" in line for line in lines)


DIR_YAML = """\
stages:
  make:
    cmd: python make.py
    outs:
      - outputs/digits
      - outputs/notes.txt:
          cache: false
"""
DIGITS = {"a.txt": b"a\n", "sub/b.txt": b"b\n", "sub/c.txt": b"c\n"}


@pytest.mark.parametrize("broken", [None, "listing", "file", "workspace"])
def test_directory_outputs_their_listing_and_its_files(fake, broken):
    project = fake(DIR_YAML, {"outputs/digits": DIGITS, "outputs/notes.txt": b"notes\n"})
    listing = project.object(project.locked_md5("outputs/digits"))
    b_object = project.object(hashlib.md5(b"b\n").hexdigest())
    project.object(project.locked_md5("outputs/notes.txt")).unlink()  # `cache: false`
    if broken == "listing":
        listing.write_text("[]")
    elif broken == "file":
        b_object.write_bytes(b"B\n")
    elif broken == "workspace":
        (project.root / "outputs" / "digits" / "sub" / "b.txt").write_bytes(b"B\n")

    code, lines = project.run()
    fails = failures(lines)
    if broken is None:
        assert code == 0, lines
        assert "  ok   intact     4 of 4 cache objects of dvc.lock, hashed again" in lines
        assert "  ok   identical  outputs/digits" in lines
        assert "  ok   identical  outputs/notes.txt" in lines
    elif broken == "listing":
        assert code == 1
        assert [line.split(" (")[0] for line in fails] == [
            "corrupt    cache object of outputs/digits"
        ]
        assert not listing.exists()
    elif broken == "file":
        assert code == 1
        assert [line.split(" (")[0] for line in fails] == [
            "corrupt    cache object of outputs/digits/sub/b.txt"
        ]
        assert "  ok   intact     3 of 4 cache objects of dvc.lock, hashed again" in lines
        assert not b_object.exists()
    else:
        assert code == 1
        assert [line.split(":")[0] for line in fails] == ["different  outputs/digits"]


# --- item 3: bad input is one line and exit 2, never a traceback ------------------------------


def model_md5_line(lines: list[str]) -> int:
    """The line of dvc.lock's md5 of the model (path, hash, md5: DVC's order)."""
    i = next(n for n, line in enumerate(lines) if "- path: outputs/model.joblib" in line) + 2
    assert lines[i].strip().startswith("md5: ")
    return i


def conflicted(text: str) -> str:
    """dvc.lock as a merge leaves it when both sides changed the model."""
    lines = text.splitlines(keepends=True)
    i = model_md5_line(lines)
    ours, theirs = lines[i], lines[i].replace("3", "4")
    lines[i : i + 1] = ["<<<<<<< HEAD\n", ours, "=======\n", theirs, ">>>>>>> other\n"]
    return "".join(lines)


def without_md5(text: str) -> str:
    lines = text.splitlines(keepends=True)
    del lines[model_md5_line(lines)]
    return "".join(lines)


LOCK_HEAD = "schema: '2.0'\nstages:\n  train:\n"
BAD_LOCKS = {
    "merge conflict": (
        conflicted,
        "a merge-conflict marker on line {line}: keep one side (`git checkout --theirs"
        " dvc.lock`), then `dvc repro` updates it",
    ),
    "stages: []": (
        lambda _: "schema: '2.0'\nstages: []\n",
        "stages is a list, expected a mapping by stage name",
    ),
    "no md5": (
        without_md5,
        "stage train, out outputs/model.joblib: no md5 (DVC records one for every output):"
        " run `dvc repro` to write dvc.lock again",
    ),
    "a list": (
        lambda _: "- schema\n- stages\n",
        "expected a mapping with schema and stages, found a list",
    ),
    "a string": (
        lambda _: "just text\n",
        "expected a mapping with schema and stages, found str just text",
    ),
    "duplicate key": (lambda text: text + "schema: '2.0'\n", "not valid YAML (line "),
    "schema 3": (
        lambda text: text.replace("schema: '2.0'", "schema: '3.0'"),
        "schema 3.0, expected '2.0'",
    ),
    "a stage that is a list": (
        lambda _: "schema: '2.0'\nstages:\n  train: []\n",
        "stage train is a list, expected a mapping",
    ),
    "outs a mapping": (
        lambda _: LOCK_HEAD + "    outs: {}\n",
        "stage train: outs is a mapping, expected a list",
    ),
    "an out that is a string": (
        lambda _: LOCK_HEAD + "    outs: [x]\n",
        "stage train: an out is str x, expected a mapping",
    ),
    "an out without path": (
        lambda _: LOCK_HEAD + "    outs: [{md5: x}]\n",
        "stage train: out: expected a path, found nothing",
    ),
    "DVC 2's hash": (
        lambda text: re.sub(r"^ +hash: md5\n", "", text, count=1, flags=re.MULTILINE),
        "hash None, expected md5 (DVC 3's; DVC 2 hashed text files otherwise)",
    ),
    "a tag": (lambda _: "!!python/object:os.system {}\n", "not valid YAML (line 1: "),
    "NUL": (lambda text: text + "\0", "not valid YAML (unacceptable character #x0000"),
}


@pytest.mark.parametrize("case", BAD_LOCKS, ids=list(BAD_LOCKS))
def test_a_broken_lock_is_one_line_and_exit_2(project, case):
    edit, expected = BAD_LOCKS[case]
    text = edit(project.lock_path.read_text())
    project.lock_path.write_text(text)
    line = one_error(*project.run())
    marker = next((n for n, t in enumerate(text.splitlines(), 1) if t.startswith("<<<<<<<")), 0)
    assert expected.format(line=marker) in line
    assert line.startswith(f"error: {project.lock_path}")


def test_a_lock_that_is_not_text_is_one_line(project):
    project.lock_path.write_bytes(b"\xff\xfeschema")
    assert one_error(*project.run()) == f"error: {project.lock_path}: not UTF-8 text (byte 0)"


def test_a_lock_that_is_not_there_is_one_line(project, tmp_path):
    missing = tmp_path / "nowhere" / "dvc.lock"
    assert one_error(*project.run("--lock", str(missing))) == f"error: {missing}: not found"


@pytest.mark.parametrize(
    "dvc_yaml, expected",
    [
        (None, "dvc.yaml: not found"),
        ("stages: []\n", "dvc.yaml: expected a mapping `stages:` of stage names"),
        (
            "stages:\n  train:\n    foreach: [1, 2]\n    do: {cmd: x}\n",
            "dvc.yaml: stage train uses `foreach`, which verify does not expand",
        ),
        (
            "stages:\n  train:\n    cmd: x\n    outs: ['${out}']\n",
            "dvc.yaml: stage train: outs ${out} is templated, which verify does not expand",
        ),
        ("<<<<<<< HEAD\n", "dvc.yaml: a merge-conflict marker on line 1: resolve the conflict"),
    ],
    ids=["missing", "stages: []", "foreach", "templated", "merge conflict"],
)
def test_a_dvc_yaml_that_verify_cannot_read_is_one_line(project, dvc_yaml, expected):
    if dvc_yaml is None:
        (project.root / "dvc.yaml").unlink()
    else:
        (project.root / "dvc.yaml").write_text(dvc_yaml)
    line = one_error(*project.run())
    assert line.startswith(f"error: {project.root}/") and expected in line


def test_a_broken_dvc_config_is_one_line(project):
    (project.root / ".dvc" / "config").write_text("[cache\n")
    line = one_error(*project.run())
    assert line.startswith(f"error: DVC cannot open the project at {project.root}: ")


def test_a_corrupt_object_stays_on_its_caches_file_system(fake, tmp_path, monkeypatch):
    project = fake()
    elsewhere = tmp_path / "elsewhere"  # the cache dir, as `dvc cache dir` sets it
    shutil.move(project.cache, elsewhere)
    (project.root / ".dvc" / "config").write_text(
        f"[core]\n    no_scm = true\n[cache]\n    dir = {elsewhere}\n"
    )
    project.cache = elsewhere

    # `elsewhere` stands for another file system: no rename crosses its border.
    def rename_within(real):
        def rename(src, dst, *args, **kwargs):
            if Path(src).is_relative_to(elsewhere) != Path(dst).is_relative_to(elsewhere):
                raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), None, str(dst))
            return real(src, dst, *args, **kwargs)

        return rename

    monkeypatch.setattr(os, "rename", rename_within(os.rename))
    monkeypatch.setattr(os, "replace", rename_within(os.replace))
    obj = project.object(project.locked_md5("outputs/model.joblib"))
    obj.write_bytes(b"not the model\n")

    code, lines = project.run()
    assert code == 1
    [aside] = (elsewhere / "corrupt").iterdir()
    assert aside.read_bytes() == b"not the model\n"
    assert not obj.exists()
    [failure] = failures(lines)
    assert failure.endswith(f": moved to {aside}; `dvc repro` rebuilds it")


def test_ctrl_c_is_one_line(project, monkeypatch):
    def interrupted(fd, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_files, "digest", interrupted)
    code, lines = project.run()
    assert code == 130
    assert lines == [
        "stopped: verify did not finish; a corrupt object it moved is in the cache's corrupt/"
    ]


# --- --numbers: the published numbers of the outputs on disk, no bytes ---------------------


def test_numbers_pass_whatever_the_bytes_and_without_a_lock(project):
    project.files.weights_png.write_bytes(b"other last bits\n")
    project.lock_path.unlink()
    shutil.rmtree(project.root / ".dvc")
    code, lines = project.run("--numbers")
    assert code == 0, lines
    assert lines == [
        "the published numbers of scikit-learn's example as published in 2017:",
        "  ok   losses: 10 iterations, largest difference from the published 0.0e+00"
        " (tolerance 1e-08)",
        "  ok   train_accuracy: 0.9868 (published 0.986800, tolerance 0.001)",
        "  ok   test_accuracy: 0.97 (published 0.970000, tolerance 0.001)",
        "verdict: the published numbers of scikit-learn's example as published in 2017 hold,"
        " within tolerance",
    ]


def test_the_gallerys_reproduction_is_checked_against_the_gallerys_numbers(fake):
    code, lines = fake(version=GALLERY_2021).run()
    assert code == 0, lines
    assert "the published numbers of the stable gallery's, since 2021:" in lines
    assert verdict(lines) == (
        "verdict: every output is dvc.lock's bytes, and they hold the published numbers of"
        " the stable gallery's, since 2021"
    )


def test_outputs_that_are_the_locks_bytes_but_not_the_published_numbers_fail(fake):
    # A dvc.lock made by other code: the bytes agree with it, the numbers do not.
    code, lines = fake(version=GALLERY_2021, numbers_of=EXAMPLE_2017).run()
    assert code == 1
    assert failures(lines)[0] == "losses: 10 iterations, published 8"
    assert verdict(lines) == (
        "verdict: every output is dvc.lock's bytes, but the numbers differ from the published"
        " ones of the stable gallery's, since 2021"
    )


def test_for_other_params_verify_checks_the_bytes_alone_and_says_so(project):
    params = project.files.params
    params.write_text(params.read_text().replace("max_iter: 10", "max_iter: 20"))
    code, lines = project.run()
    assert code == 0, lines
    assert not any(line.startswith("the published numbers") for line in lines)
    assert verdict(lines) == (
        "verdict: every output is dvc.lock's bytes (no numbers are published for these"
        " params, so the bytes alone are checked: differences from scikit-learn's example as"
        " published in 2017: train.max_iter: 20 (example: 10))"
    )


def test_numbers_of_the_gallerys_version_are_the_gallerys(project):
    # params.yaml as `make gallery` sets it, and the gallery's printed numbers.
    set_version(project.files.params, GALLERY_2021)
    write_numbers(project.files, GALLERY_2021)
    code, lines = project.run("--numbers")
    assert code == 0, lines
    assert lines == [
        "the published numbers of the stable gallery's, since 2021:",
        "  ok   losses: 8 iterations, largest difference from the published 0.0e+00"
        " (tolerance 1e-08)",
        "  ok   train_accuracy: 0.986429 (published 0.986429, tolerance 0.001)",
        "  ok   test_accuracy: 0.953061 (published 0.953061, tolerance 0.001)",
        "verdict: the published numbers of the stable gallery's, since 2021 hold, within tolerance",
    ]
    # The 2017 example's numbers under the gallery's params are not the gallery's.
    write_numbers(project.files, EXAMPLE_2017)
    code, lines = project.run("--numbers")
    assert code == 1
    assert failures(lines)[0] == "losses: 10 iterations, published 8"


LOSS_5 = EXAMPLE_2017.losses[4]
LOSSES = "losses: 10 iterations, largest difference from the published"


@pytest.mark.parametrize(
    "loss_5, accuracy, failed",
    [
        (LOSS_5 + 2e-8, 0.97, f"{LOSSES} 2.0e-08"),
        (LOSS_5 + 0.9e-8, 0.97, None),
        (float("nan"), 0.97, f"{LOSSES} nan"),
        (LOSS_5, 0.9689, "test_accuracy: 0.9689"),
        (LOSS_5, 0.9709, None),
    ],
)
def test_numbers_hold_within_their_tolerances(project, loss_5, accuracy, failed):
    losses = list(enumerate(EXAMPLE_2017.losses, 1))
    losses[4] = (5, loss_5)
    formats.write_loss(project.files.loss_csv, losses)
    metrics = formats.read_metrics(project.files.metrics) | {"test_accuracy": accuracy}
    formats.write_metrics(project.files.metrics, metrics)
    code, lines = project.run("--numbers")
    assert code == (1 if failed else 0), lines
    assert [line.split(" (")[0] for line in failures(lines)] == ([failed] if failed else [])


def test_numbers_of_missing_outputs_fail(project):
    project.files.loss_csv.unlink()
    code, lines = project.run("--numbers")
    assert code == 1
    assert failures(lines) == [f"missing    {project.files.loss_csv}: run `dvc repro` to make it"]
    assert verdict(lines) == (
        "verdict: the numbers cannot be read from the outputs (`dvc repro` writes them)"
    )


def test_numbers_for_other_params_are_one_line(project):
    params = project.files.params
    params.write_text(params.read_text().replace("max_iter: 10", "max_iter: 20"))
    assert one_error(*project.run("--numbers")) == (
        "error: --numbers: no numbers are published for these params (differences from"
        " scikit-learn's example as published in 2017: train.max_iter: 20 (example: 10)); the"
        " default params.yaml is in git (`git checkout params.yaml`), and `make gallery` runs"
        " the gallery's version"
    )


def test_another_estimators_arguments_are_differences_not_a_crash():
    train = SimpleNamespace(estimator_kwargs=lambda: {"C": 1.0, "max_iter": 10})
    data = SimpleNamespace(pixel_dtype="float64")
    split = SimpleNamespace(model_dump=lambda: read_yaml(paths.PROJECT.params)["split"])
    params = SimpleNamespace(train=train, data=data, split=split)
    assert published.differences(params, EXAMPLE_2017) == [
        "train.C: 1.0 (example: no such argument)"
    ]


def test_numbers_compare_no_bytes(project):
    assert project.run("--numbers", "--lock", "dvc.lock")[0] == 2
    assert project.run("--numbers", "--strict")[0] == 2


# --- one md5 helper ---------------------------------------------------------------------------


def test_the_tests_hash_files_with_verifys_helper():
    assert machines.md5 is verify_files.md5_of


# --- end to end: the real CLI and DVC, with the cache on another file system -----------------


def other_file_system(near: Path) -> Path | None:
    """/dev/shm where it is another file system than ``near``'s (a tmpfs on Linux)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != near.stat().st_dev:
        return shm
    return None


@pytest.mark.slow
def test_a_corrupt_cache_object_is_found_moved_aside_and_rebuilt(tiny_repo, tmp_path):
    repo = tiny_repo
    with tempfile.TemporaryDirectory(dir=other_file_system(tmp_path) or tmp_path) as cache:
        repo.dvc("cache", "dir", cache)
        repo.dvc("repro")
        labels = repo.root / "data" / "labels.npy"
        good = labels.read_bytes()
        md5 = read_yaml(repo.root / "dvc.lock")["stages"]["fetch_and_scale"]["outs"][1]["md5"]
        obj = Path(cache) / "files" / "md5" / md5[:2] / md5[2:]
        shuffled = np.load(labels)
        random.Random(0).shuffle(shuffled)
        obj.chmod(0o644)
        np.save(obj.open("wb"), shuffled)  # the cache now lies about the labels
        labels.unlink()  # as in a fresh checkout: the next one would come from the cache

        verified = repo.run(sys.executable, "-m", "tools.verify", check=False)
        assert verified.returncode == 1, verified.stderr
        assert re.search(
            rf"FAIL corrupt    cache object of data/labels.npy \({re.escape(str(obj))}\) holds"
            rf" md5 [0-9a-f]{{32}}: moved to {re.escape(cache)}/corrupt/{md5}\.\d{{8}}T\d{{6}};"
            r" `dvc repro` rebuilds it",
            verified.stderr,
        ), verified.stderr
        assert "FAIL missing    data/labels.npy" in verified.stderr
        assert not obj.exists()

        # DVC works on with the quarantine folder in its cache.
        assert repo.ran_stages(repo.dvc("repro")) == ["fetch_and_scale"]
        assert labels.read_bytes() == good
        repo.dvc("gc", "--workspace", "--force")
        assert len(list((Path(cache) / "corrupt").iterdir())) == 1
        assert "Data and pipelines are up to date." in repo.dvc("status").stdout
        passed = repo.run(sys.executable, "-m", "tools.verify", "--strict")
        assert "verdict: every output is dvc.lock's bytes" in passed.stderr

        lock = repo.root / "dvc.lock"
        lock.write_text(conflicted(lock.read_text()))
        refused = repo.run(sys.executable, "-m", "tools.verify", check=False)
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"error: {lock}: a merge-conflict marker on line ")
        assert refused.stderr.count("\n") == 1


# --- verify reads only regular files, on the open descriptor, within bounds --------------------


def test_an_output_swapped_for_a_fifo_is_not_a_file_and_never_hangs(project):
    model = project.files.model
    model.unlink()
    os.mkfifo(model)  # a plain open() would wait for a writer forever
    code, lines = project.run()
    assert code == 1
    assert failures(lines) == ["not a file outputs/model.joblib: a named pipe"]


@pytest.mark.parametrize(
    ("plant", "said"),
    [
        (lambda lock: (lock.unlink(), lock.symlink_to("/dev/zero")), "a device, not a file"),
        (lambda lock: (lock.unlink(), os.mkfifo(lock)), "a named pipe, not a file"),
        (
            lambda lock: lock.write_bytes(b"#" * (MAX_YAML_BYTES + 1)),
            f"{MAX_YAML_BYTES + 1} bytes, more than the {MAX_YAML_BYTES}",
        ),
    ],
)
def test_a_lock_that_is_a_device_a_fifo_or_huge_is_one_line(project, plant, said):
    # /dev/zero took 2.7 GB and a MemoryError traceback; a FIFO hung verify.
    plant(project.lock_path)
    line = one_error(*project.run())
    assert line.startswith(f"error: {project.lock_path}: {said}")
    other = project.root / "other.lock"
    os.mkfifo(other)
    assert one_error(*project.run("--lock", str(other))) == (
        f"error: {other}: a named pipe, not a file"
    )


def test_a_file_whose_size_is_not_the_locks_is_different_without_being_read(project):
    model = project.files.model
    model.unlink()
    with model.open("wb") as sparse:
        sparse.truncate(16 << 30)  # 16 GiB of holes: 94 s to hash before
    code, lines = project.run()
    assert code == 1
    [size] = [
        out["size"]
        for out in project.lock()["stages"]["train"]["outs"]
        if out["path"] == "outputs/model.joblib"
    ]
    assert failures(lines) == [
        f"different  outputs/model.joblib: {16 << 30} bytes, dvc.lock {size} (not hashed)"
    ]


def test_a_cache_object_that_links_outside_the_cache_is_never_hashed(project, tmp_path):
    md5 = project.locked_md5("outputs/model.joblib")
    secret = tmp_path / "secret.txt"
    secret.write_text("someone else's\n")
    project.object(md5).unlink()
    project.object(md5).symlink_to(secret)
    code, lines = project.run()
    assert code == 1
    [line] = failures(lines)
    assert line.startswith("outside    cache object of outputs/model.joblib")
    assert f"it leads to {secret}" in line
    assert hashlib.md5(secret.read_bytes()).hexdigest() not in "\n".join(lines)


@pytest.mark.parametrize("where", ["root", "parent"])
def test_a_cache_folder_that_holds_the_project_is_refused(project, where):
    folder = Path("/") if where == "root" else project.root.parent
    config = project.root / ".dvc" / "config"
    config.write_text(config.read_text() + f"[cache]\n    dir = {folder}\n")
    assert one_error(*project.run()) == (
        f"error: DVC's cache folder {folder} holds the project itself: `dvc cache dir` should"
        " name a folder of its own (the default is .dvc/cache)"
    )


def test_checking_nothing_is_no_pass(fake):
    stage = "stages:\n  only:\n    cmd: echo hi\n"
    project = fake(dvc_yaml=stage, contents={})
    project.lock_path.write_text("")
    assert one_error(*project.run()) == (
        "error: dvc.yaml declares no output and dvc.lock records none: there is nothing to"
        " check, and checking nothing is no pass"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            ("params.yaml", "max_iter: 10", "max_iter: 20"),
            "stage train: params.yaml train modified",
        ),
        (
            ("pipeline/model.py", '"""', '# a comment\n"""'),
            "stage train: pipeline/model.py modified",
        ),
        # A dep that dvc.yaml has and dvc.lock does not record yet.
        (
            (
                "dvc.yaml",
                "      - stages/train.py\n",
                "      - stages/train.py\n      - README.md\n",
            ),
            "stage train: README.md modified",  # DVC says modified, for a new dep too
        ),
    ],
)
def test_a_workspace_that_dvc_lock_no_longer_describes_fails(tiny_repo, edit, named):
    # verify said "every output is dvc.lock's bytes" here, exit 0, where `dvc status`
    # said that train had changed.
    repo = tiny_repo
    repo.dvc("repro")
    assert repo.run(sys.executable, "-m", "tools.verify").returncode == 0
    path, old, new = edit
    file = repo.root / path
    file.write_text(file.read_text().replace(old, new, 1))
    refused = repo.run(sys.executable, "-m", "tools.verify", check=False)
    assert refused.returncode == 1
    assert f"  FAIL changed    {named}" in refused.stderr.splitlines()
    [verdict_line] = [line for line in refused.stderr.splitlines() if line.startswith("verdict")]
    assert verdict_line.startswith("verdict: dvc.lock no longer describes the workspace: ")
    assert named in verdict_line


def test_another_data_set_is_checked_by_its_bytes_alone(fake):
    # A faithful run on Fashion-MNIST, say: MNIST's published numbers are not its own.
    project = fake(numbers_of=GALLERY_2021)  # not the 2017 numbers: they must not matter
    sums = project.files.checksums
    sums.write_text(sums.read_text().replace("ba89", "0000"))
    code, lines = project.run()
    assert code == 0, lines
    assert verdict(lines).startswith(
        "verdict: every output is dvc.lock's bytes (no numbers are published for these"
        " params, so the bytes alone are checked: data/mnist.sha256 names another data set"
    )


@pytest.mark.parametrize("deps", ["5", "[1, {path: 2}]", "{a: b}"])
def test_a_lock_whose_deps_are_not_a_list_of_deps_is_no_traceback(project, deps):
    lock = project.lock()
    lock["stages"]["train"]["deps"] = YAML(typ="safe").load(deps)
    project.write_lock(lock)
    assert recorded_deps(project.lock_path) == set()
    assert project.run()[0] in (0, 1)


def test_a_dvc_command_that_holds_the_lock_is_one_line(tiny_repo):
    repo = tiny_repo
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DVC_LOCK],
        cwd=repo.root,
        env=repo.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = repo.run(sys.executable, "-m", "tools.verify", check=False)
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: another dvc command is running in this project (it holds DVC's lock), and DVC"
        " cannot tell the project's status meanwhile: run verify once it ends"
    )


HOLD_DVC_LOCK = """
import time
from dvc.repo import Repo
repo = Repo(".")
with repo.lock:
    print("held", flush=True)
    time.sleep(60)
"""

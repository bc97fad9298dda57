"""Outputs written all or none, atomic single files, reproducible bytes, file modes; stale
temporary files removed, and outputs that cannot be written refused before the work."""

import errno
import fcntl
import logging
import os
import re
import signal
import subprocess
import tempfile
import threading
import zipfile

import numpy as np
import pytest

from pipeline import paths, runner
from pipeline.artifacts import (
    StagedOutputs,
    all_or_none,
    atomic_path,
    prepare_outputs,
    read_npz,
    remove_stale_temps,
    set_aside,
    temp_beside,
    write_json,
    write_npz,
    write_text,
)
from pipeline.errors import StageStopped, UserError
from tests.project import killed_writer, live_writer
from tools.verify.files import md5_of


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert listing(target.parent) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError("crash"), KeyboardInterrupt()])
def test_atomic_path_leaves_old_file_and_no_temp_on_failure(tmp_path, error):
    target = tmp_path / "out.txt"
    target.write_text("earlier result")
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise error
    assert target.read_text() == "earlier result"
    assert listing(tmp_path) == ["out.txt"]


def test_all_or_none_places_every_output_only_at_the_end(tmp_path):
    with all_or_none() as out:
        write_text(out.temp(tmp_path / "a.txt"), "a")
        write_text(out.temp(tmp_path / "sub" / "b.txt"), "b")
        assert not (tmp_path / "a.txt").exists()
    assert (tmp_path / "a.txt").read_text() == "a"
    assert (tmp_path / "sub" / "b.txt").read_text() == "b"
    assert listing(tmp_path) == ["a.txt", "sub"] and listing(tmp_path / "sub") == ["b.txt"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), StageStopped(15)])
def test_all_or_none_leaves_nothing_when_the_last_output_fails(tmp_path, error):
    with pytest.raises(type(error)), all_or_none() as out:
        write_text(out.temp(tmp_path / "a.txt"), "a")
        out.temp(tmp_path / "b.txt")
        raise error
    assert listing(tmp_path) == []


def test_a_stop_swallowed_before_the_commit_still_stops_it(tmp_path, monkeypatch):
    # As when SIGTERM's exception is raised inside a finalizer, which Python only prints.
    monkeypatch.setattr(runner._State, "stopped_by", signal.SIGTERM)
    with pytest.raises(StageStopped), all_or_none() as out:
        write_text(out.temp(tmp_path / "a.txt"), "a")
    assert listing(tmp_path) == []


def test_a_stop_during_the_commit_waits_and_is_then_ignored(tmp_path, monkeypatch):
    monkeypatch.setattr(runner._State, "stopped_by", None)
    monkeypatch.setattr(runner._State, "complete", False)
    # Other threads, which a blocked signal would reach instead (OpenBLAS has some here).
    assert threading.active_count() > 1 or len(os.listdir("/proc/self/task")) > 1
    previous = signal.signal(signal.SIGTERM, runner._on_stop)
    real_replace = os.replace

    def replace_and_get_stopped(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGTERM)  # held until the commit ends

    try:
        monkeypatch.setattr(os, "replace", replace_and_get_stopped)
        with all_or_none() as out:
            write_text(out.temp(tmp_path / "a.txt"), "a")
            write_text(out.temp(tmp_path / "b.txt"), "b")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert listing(tmp_path) == ["a.txt", "b.txt"]
    assert runner._State.complete and runner._State.stopped_by is None


def test_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "cached.gz") as tmp:
            tmp.write_bytes(b"x")
        with all_or_none() as out:
            write_text(out.temp(tmp_path / "out.txt"), "x")
    finally:
        os.umask(old)
    assert (tmp_path / "cached.gz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_write_json_is_sorted_and_ends_with_newline(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": 0.5})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 0.5,\n  "b": 1\n}\n'


def test_npz_round_trips_and_is_byte_identical_across_writes(tmp_path):
    arrays = {"first_layer": np.arange(12.0).reshape(3, 4), "labels": np.arange(3, dtype=np.uint8)}
    write_npz(tmp_path / "a.npz", arrays)
    write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = read_npz(tmp_path / "a.npz")
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_npz_bytes_depend_on_neither_python_nor_platform(tmp_path):
    """Plain zip records, no ZIP64 extra field: Python 3.11.2 and 3.11.7 wrote a streamed
    member's ZIP64 records differently (weights.npz changed its md5 with the interpreter),
    and ZipInfo records Windows as another creating system."""
    path = tmp_path / "weights.npz"
    write_npz(path, {"first_layer": np.arange(6, dtype=np.float64).reshape(3, 2)})
    with zipfile.ZipFile(path) as archive:
        (info,) = archive.infolist()
    assert (info.extra, info.create_system, info.create_version) == (b"", 3, 20)
    # The bytes this writer gives under every Python 3.11 here (3.11.2 and 3.11.7).
    assert md5_of(path) == "28ec01eab927d305af010101e45f1836"


def test_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(ValueError, match="pickle"), all_or_none() as out:
        write_npz(out.temp(tmp_path / "o.npz"), {"o": np.array([{"a": 1}], dtype=object)})
    assert list(tmp_path.iterdir()) == []


# --- temporary files that killed writers leave ------------------------------------------


def test_a_temporary_file_names_its_target_and_is_locked_by_its_writer(tmp_path):
    temp = temp_beside(tmp_path / "model.joblib")
    assert re.fullmatch(r"\.model\.joblib\.writing-[a-z0-9_]{8}\.tmp", temp.path.name)
    with open(temp.path, "rb") as other:  # another open file: the lock is held
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        temp.release()
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: now it can be taken


def test_only_temporary_files_that_no_writer_holds_are_removed(tmp_path):
    target = tmp_path / "images.npy"
    killed = killed_writer(target)
    others = {
        # A user's files, whatever they look like: not the pipeline's names.
        "backup": ".images.npy.backup.tmp",
        "older": ".images.npy.k2j3h4g5.tmp",
        "pid_named": f".images.npy.{os.getpid()}.abcd1234.tmp",
        "not_hidden": "images.npy.writing-abcd1234.tmp",
        "other_target": ".labels.npy.writing-abcd1234.tmp",
    }
    for name in others.values():
        (tmp_path / name).write_bytes(b"the user's")
    with live_writer(target) as running:  # a concurrent run's, alive
        removed = remove_stale_temps(target)
        assert running.exists()
    assert removed == [killed]
    assert not killed.exists()
    assert all((tmp_path / name).read_bytes() == b"the user's" for name in others.values())


def test_a_writer_in_another_pid_namespace_keeps_its_file(tmp_path):
    # A container sharing the folder: its writer's PID means nothing here; its lock does.
    unshare = ("unshare", "--pid", "--fork", "--kill-child", "--mount-proc")
    try:
        with live_writer(tmp_path / "model.joblib", prefix=unshare) as theirs:
            assert remove_stale_temps(tmp_path / "model.joblib") == []
            assert theirs.exists()
    except OSError as exc:
        pytest.skip(f"no PID namespace here: {exc}")


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder"])
def test_what_is_not_a_regular_file_is_never_opened_for_long_nor_removed(tmp_path, kind):
    target = tmp_path / "model.joblib"
    planted = tmp_path / ".model.joblib.writing-abcd1234.tmp"
    outside = tmp_path / "elsewhere"
    outside.write_bytes(b"kept")
    {"fifo": lambda: os.mkfifo(planted), "symlink": lambda: planted.symlink_to(outside),
     "folder": planted.mkdir}[kind]()  # fmt: skip
    assert remove_stale_temps(target) == []  # a FIFO would have hung a plain open()
    assert os.path.lexists(planted) and outside.read_bytes() == b"kept"


@pytest.mark.parametrize("folder", ["data", "outputs"])
def test_git_ignores_the_temporary_files(folder):
    name = f"{folder}/.images.npy.writing-abcd1234.tmp"
    result = subprocess.run(["git", "check-ignore", "-q", name], cwd=paths.ROOT)
    assert result.returncode == 0


# --- a stage's outputs, checked before its work --------------------------------------------


def test_outputs_that_can_be_written_pass_and_lose_their_stale_temporaries(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    targets = [tmp_path / "new" / "a.csv", tmp_path / "b.csv"]
    stale = killed_writer(targets[1])
    prepare_outputs(targets)
    assert listing(tmp_path) == ["new"] and listing(tmp_path / "new") == []
    assert f"removed {stale}, left by a writer that no longer runs" in caplog.messages


def test_a_folder_where_an_output_goes_is_refused(tmp_path):
    (tmp_path / "model.joblib").mkdir()
    message = f"{tmp_path / 'model.joblib'} is a folder, where this stage writes a file"
    with pytest.raises(UserError, match=re.escape(message) + ": move it away, then run again$"):
        prepare_outputs([tmp_path / "weights.npz", tmp_path / "model.joblib"])


def test_a_file_where_an_outputs_folder_goes_is_refused(tmp_path):
    (tmp_path / "outputs").write_text("")
    message = f"{tmp_path / 'outputs'} is a file, where this stage needs a folder"
    with pytest.raises(UserError, match=re.escape(message)):
        prepare_outputs([tmp_path / "outputs" / "sub" / "model.joblib"])


def test_a_folder_without_write_permission_is_refused(tmp_path, monkeypatch):
    # root may write anywhere: the permission check is the kernel's, played here.
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(UserError, match=re.escape(f"cannot create files in {tmp_path} (Perm")):
        prepare_outputs([tmp_path / "model.joblib"])


@pytest.mark.parametrize("where", ["temp_beside", "staging"])
def test_a_stop_while_a_temporary_file_is_made_leaves_no_file_and_no_descriptor(
    tmp_path, monkeypatch, where
):
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    if where == "temp_beside":
        monkeypatch.setattr(os, "fchmod", lambda fd, mode: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            temp_beside(tmp_path / "model.joblib")
    else:

        class Refusing(list):
            def append(self, item):
                raise KeyboardInterrupt

        staged = StagedOutputs()
        staged._staged = Refusing()
        with pytest.raises(KeyboardInterrupt):
            staged.temp(tmp_path / "model.joblib")
    assert listing(tmp_path) == []
    assert fds() == before


def earlier_run(folder):
    """An output folder as an earlier run left it."""
    (folder / "plots").mkdir(parents=True)
    (folder / "plots" / "loss.tsv").write_text("step\tloss\n1\t0.5\n")
    return {"plots/loss.tsv": "step\tloss\n1\t0.5\n"}


def contents(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, StageStopped(15)])
def test_a_failed_stage_puts_back_the_folder_an_earlier_run_left(tmp_path, error):
    folder = tmp_path / "epochs"
    before = earlier_run(folder)
    expected = type(error) if isinstance(error, BaseException) else error
    with pytest.raises(expected), all_or_none() as out:
        new = out.folder(folder)
        assert contents(new) == {}  # a new, empty folder; the earlier one set aside
        (new / "loss.tsv").write_text("progress\n")
        out.temp(tmp_path / "model.joblib").write_bytes(b"partial")
        raise error
    assert contents(folder) == before
    assert listing(tmp_path) == ["epochs"]  # nothing set aside is left, no temporary file


def test_a_stage_that_completes_replaces_the_folder_and_leaves_nothing_aside(tmp_path):
    folder = tmp_path / "epochs"
    earlier_run(folder)
    with all_or_none() as out:
        (out.folder(folder) / "loss.tsv").write_text("new\n")
    assert contents(folder) == {"loss.tsv": "new\n"}
    assert listing(tmp_path) == ["epochs"]


def test_a_folder_set_aside_is_removed_only_once_no_stage_holds_it(tmp_path):
    folder = tmp_path / "epochs"
    earlier_run(folder)
    held = set_aside(folder)  # as a running stage holds it
    assert held.path.name.startswith(".epochs.previous-") and not folder.exists()
    assert remove_stale_temps(folder) == []
    assert contents(held.path) != {}
    held.release()  # as when that stage is killed: the kernel lets its lock go
    assert remove_stale_temps(folder) == [held.path]
    assert not held.path.exists()

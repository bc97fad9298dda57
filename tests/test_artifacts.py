"""Outputs written all or none, atomic single files, reproducible bytes, file modes."""

import os
import signal
import threading
import zipfile

import numpy as np
import pytest

from stages import runner
from stages.artifacts import (
    all_or_none,
    atomic_path,
    read_npz,
    write_json,
    write_npz,
    write_text,
)
from stages.errors import StageStopped


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


def test_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(ValueError, match="pickle"), all_or_none() as out:
        write_npz(out.temp(tmp_path / "o.npz"), {"o": np.array([{"a": 1}], dtype=object)})
    assert list(tmp_path.iterdir()) == []

"""Atomic, reproducible writes."""

import zipfile

import numpy as np
import pytest

from stages.artifacts import atomic_path, read_npz, write_json, write_npz, write_text


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError("crash"), KeyboardInterrupt()])
def test_atomic_path_leaves_old_file_and_no_temp_on_failure(tmp_path, error):
    target = tmp_path / "out.txt"
    target.write_text("earlier result")
    with pytest.raises(type(error)):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise error
    assert target.read_text() == "earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_json_is_sorted_and_ends_with_newline(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": 0.5})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 0.5,\n  "b": 1\n}\n'


def test_write_text(tmp_path):
    write_text(tmp_path / "t.csv", "x\n")
    assert (tmp_path / "t.csv").read_text() == "x\n"


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
    with pytest.raises(ValueError, match="pickle"):
        write_npz(tmp_path / "o.npz", {"o": np.array([{"a": 1}], dtype=object)})
    assert list(tmp_path.iterdir()) == []

"""The files passed between stages: each format's writer, its reader and its field names
side by side, so that a change of format is one edit.

- ``images.npy`` (one flattened image a row) and ``labels.npy`` (uint8): written by
  ``write_images``, from the rows fetch_and_scale scales a chunk at a time, and
  ``write_labels``; read by ``read_array``;
- ``weights.npz``: the first layer's weights under ``FIRST_LAYER``, (features, units),
  what ``pipeline/model.py``'s ``first_layer_weights`` gives;
- ``loss.csv``: ``iteration,loss``, at full precision;
- ``predictions.csv``: ``index,actual,predicted`` for each test digit, ``index`` its
  row in ``images.npy``;
- ``metrics.json``: the headline metrics, what ``dvc metrics`` and ``dvc exp show`` show;
- ``per_class.csv``: precision, recall, F1 and support of each digit on the test set,
  a plot a reader opens on purpose rather than forty more columns in ``dvc exp show``.
"""

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pipeline.artifacts import read_npz, write_json, write_npz, write_text
from pipeline.errors import UserError

FIRST_LAYER = "first_layer"
LOSS_FIELDS = ("iteration", "loss")
PREDICTION_FIELDS = ("index", "actual", "predicted")
PER_CLASS_FIELDS = ("digit", "precision", "recall", "f1", "support")
HEADLINE_METRICS = ("train_accuracy", "test_accuracy", "final_loss", "iterations")


def write_images(
    path: Path, shape: tuple[int, int], dtype: str, chunks: Iterable[np.ndarray]
) -> None:
    """An .npy of ``shape`` and ``dtype`` from ``chunks`` of its rows, in order, written as
    they come: the bytes of ``np.save`` of their concatenation, which is never held whole."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": shape,
    }
    rows = 0
    with path.open("wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for chunk in chunks:
            if chunk.dtype != np.dtype(dtype) or chunk.shape[1:] != shape[1:]:
                raise ValueError(f"a chunk of {chunk.dtype} {chunk.shape} in {dtype} {shape}")
            rows += len(chunk)
            out.write(np.ascontiguousarray(chunk).data)
    if rows != shape[0]:
        raise ValueError(f"{rows} rows written for a shape of {shape}")


def write_labels(path: Path, labels: np.ndarray) -> None:
    """The labels as one uint8 .npy."""
    with path.open("wb") as out:
        np.save(out, labels.astype(np.uint8))


def read_array(path: Path, **kwargs) -> np.ndarray:
    """An array that fetch_and_scale wrote, never unpickled; one message if it is not one."""
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except FileNotFoundError:
        raise UserError(f"{path} not found: run `dvc repro` to make it") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(
            f"{path} is not an array that fetch_and_scale wrote ({exc}):"
            " run `dvc repro --force fetch_and_scale`"
        ) from None


def write_weights(path: Path, first_layer: np.ndarray) -> None:
    """The input weights of each first-layer unit, (n_features, n_units)."""
    write_npz(path, {FIRST_LAYER: first_layer})


def read_weights(path: Path) -> np.ndarray:
    """The (n_features, n_units) weights of a weights.npz."""
    return read_npz(path)[FIRST_LAYER]


def write_loss(path: Path, history: list[tuple[int, float]]) -> None:
    """(iteration, loss) pairs as CSV, floats at full (round-trip) precision."""
    rows = [f"{iteration},{loss!r}" for iteration, loss in history]
    write_text(path, ",".join(LOSS_FIELDS) + "\n" + "\n".join(rows) + "\n")


def read_loss(path: Path) -> tuple[list[int], list[float]]:
    """The iterations and the losses of a loss.csv."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    iteration, loss = LOSS_FIELDS
    return [int(row[iteration]) for row in rows], [float(row[loss]) for row in rows]


def write_predictions(
    path: Path, rows: np.ndarray, actual: np.ndarray, predicted: np.ndarray
) -> None:
    """A row per test digit: ``rows`` holds each one's row in images.npy."""
    lines = zip(rows.tolist(), actual.tolist(), predicted.tolist(), strict=True)
    text = "\n".join(f"{index},{a},{p}" for index, a, p in lines)
    write_text(path, ",".join(PREDICTION_FIELDS) + "\n" + text + "\n")


def read_predictions(path: Path) -> np.ndarray:
    """The (index, actual, predicted) rows of a predictions.csv, as an (n, 3) array."""
    return np.loadtxt(path, dtype=np.int64, delimiter=",", skiprows=1, ndmin=2)


def write_metrics(path: Path, metrics: dict) -> None:
    write_json(path, {key: metrics[key] for key in HEADLINE_METRICS})


def read_metrics(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def write_per_class(path: Path, rows: list[tuple[int, float, float, float, int]]) -> None:
    """(digit, precision, recall, f1, support) rows, floats at full precision."""
    lines = [",".join(map(repr, row)) for row in rows]
    write_text(path, ",".join(PER_CLASS_FIELDS) + "\n" + "\n".join(lines) + "\n")

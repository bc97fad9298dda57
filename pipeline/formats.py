"""The files that train writes and visualize, DVC and the reader read: each format's
writer, its reader and its field names side by side, so that a change of format is one
edit. (fetch_and_scale's arrays have a module of their own, ``pipeline/arrays.py``, so that
an edit here does not rerun the stage that writes 439 MB.)

- ``weights.npz``: the first layer's weights under ``FIRST_LAYER``, (features, units),
  what ``pipeline/model.py``'s ``first_layer_weights`` gives;
- ``loss.csv``: ``iteration,loss``, at full precision;
- ``predictions.csv``: ``index,actual,predicted`` for each test digit, ``index`` its
  row in ``images.npy``;
- ``metrics.json``: the headline metrics, what ``dvc metrics`` and ``dvc exp show`` show;
- ``per_class.csv``: precision, recall, F1 and support of each digit on the test set,
  a plot a reader opens on purpose rather than forty more columns in ``dvc exp show``;
- ``weights_by_epoch.npz``: the first layer's weights of the epochs kept, ``first_layer``
  (kept epochs, features, units), index 0 the initial weights; ``epochs``, the epoch of
  each; ``model_epoch``, the epoch whose weights the model holds;
- ``epochs/``: DVCLive's layout, ``plots/metrics/NAME.tsv`` for each name of
  ``EPOCH_METRICS`` (a ``step`` column, the epoch, and the value) and the summary
  ``metrics.json``, written as DVCLive writes them by ``EpochLog`` and read by
  ``read_epoch_metric``;
- ``units.csv``: a row per first-layer unit, ``UNIT_FIELDS`` (``pipeline/units.py``), and
  ``units.json``, the count of each verdict, a second metrics file.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np

from pipeline.artifacts import read_npz, write_json, write_npz, write_text

FIRST_LAYER = "first_layer"
LOSS_FIELDS = ("iteration", "loss")
PREDICTION_FIELDS = ("index", "actual", "predicted")
PER_CLASS_FIELDS = ("digit", "precision", "recall", "f1", "support")
HEADLINE_METRICS = ("train_accuracy", "test_accuracy", "final_loss", "iterations")
# Each per-epoch value and its name in DVCLive: plots/metrics/NAME.tsv in the epochs folder.
EPOCH_METRICS = {
    "loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "test_accuracy": "test/accuracy",
    "validation_score": "validation/score",
}
EPOCH_STEP = "step"  # DVCLive's column of the step, here the epoch
EPOCH_SUMMARY = "metrics.json"  # DVCLive's summary: the last epoch's values, a plot's file
UNIT_FIELDS = (
    "unit",
    "active_fraction",
    "relative_change",
    "max_abs_weight",
    "neighbour_correlation",
    "verdict",
)


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


def write_weights_by_epoch(
    path: Path, epochs: np.ndarray, first_layer: np.ndarray, model_epoch: int
) -> None:
    """The first-layer weights of each kept epoch, (len(epochs), features, units)."""
    write_npz(
        path,
        {
            FIRST_LAYER: first_layer,
            "epochs": np.asarray(epochs, dtype=np.int64),
            "model_epoch": np.int64(model_epoch),
        },
    )


def read_weights_by_epoch(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """The kept epochs, their first-layer weights and the model's epoch of a
    weights_by_epoch.npz."""
    arrays = read_npz(path)
    return arrays["epochs"], arrays[FIRST_LAYER], int(arrays["model_epoch"])


def epoch_metric_path(folder: Path, name: str) -> Path:
    """Where DVCLive writes the metric ``name`` (a value of ``EPOCH_METRICS``)."""
    return folder / "plots" / "metrics" / f"{name}.tsv"


def epoch_metric_column(name: str) -> str:
    """The column of the metric ``name`` in its TSV: the last part of the name."""
    return name.rpartition("/")[2]


def _tsv_value(value: float) -> float | str:
    # as DVCLive's log_metric: NaN and infinity as words (a diverged loss never gets here:
    # the fit stops with one line)
    return value if math.isfinite(value) else str(value)


class EpochLog:
    """Each epoch's values in DVCLive's layout under ``folder``, as DVCLive's
    ``Live.log_metric`` and ``Live.next_step`` write them: a TSV for each metric
    (``epoch_metric_path``: a ``step`` column, the epoch, and the value), a line appended
    at each epoch so that a reader sees the fit as it goes, and DVCLive's summary,
    ``metrics.json``, rewritten at each epoch. The same epochs give the same bytes: no
    timestamp, no run id.

    DVCLive itself is not imported (docs/epochs.md says why: it needs DVC in the stage's
    environment, whose dependencies arm64 cannot install from wheels alone, and opens
    the DVC repository on start); ``tests/test_epochs.py`` checks that these files are,
    byte for byte, those DVCLive writes.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.summary: dict = {}

    def append(self, epoch: int, values: dict[str, float]) -> None:
        """Log ``values`` (by ``EPOCH_METRICS`` name) as the step ``epoch``."""
        for name, value in values.items():
            path = epoch_metric_path(self.folder, name)
            column = epoch_metric_column(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            header = "" if path.exists() else f"{EPOCH_STEP}\t{column}\n"
            with path.open("a", encoding="utf-8") as tsv:
                tsv.write(f"{header}{epoch}\t{_tsv_value(value)}\n")
            *groups, last = name.split("/")
            level = self.summary
            for group in groups:
                level = level.setdefault(group, {})
            level[last] = _tsv_value(value)
        self.summary[EPOCH_STEP] = epoch
        # rewritten in place, as DVCLive does: the summary is a plot's file, not a result
        write_text(self.folder / EPOCH_SUMMARY, json.dumps(self.summary, indent=4) + "\n")


def read_epoch_metric(folder: Path, name: str) -> tuple[list[int], list[float]]:
    """The epochs and values of one per-epoch metric in DVCLive's folder ``folder``."""
    with epoch_metric_path(folder, name).open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    column = epoch_metric_column(name)
    return [int(row[EPOCH_STEP]) for row in rows], [float(row[column]) for row in rows]


def write_units(path: Path, rows: list[tuple]) -> None:
    """A row per unit, ``UNIT_FIELDS``, floats at full precision."""
    lines = [",".join(v if isinstance(v, str) else repr(v) for v in row) for row in rows]
    write_text(path, ",".join(UNIT_FIELDS) + "\n" + "\n".join(lines) + "\n")


def write_unit_counts(path: Path, counts: dict[str, int]) -> None:
    """The number of units and of each verdict: units.json, a second metrics file."""
    write_json(path, counts)


def read_units(path: Path) -> list[dict]:
    """The rows of a units.csv, numbers as numbers."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        {
            key: (value if key == "verdict" else int(value) if key == "unit" else float(value))
            for key, value in row.items()
        }
        for row in rows
    ]

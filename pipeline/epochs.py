"""The fit epoch by epoch: the first layer's weights of the epochs kept, exactly, and the
scores after each epoch, logged while the fit runs in DVCLive's layout.

- ``EpochParams``: params.yaml's ``epochs`` section, which train reads;
- ``KeptWeights``: the first layer's weights at epoch 0 and at most ``epochs.keep`` epochs
  after it, evenly spaced, whatever the number of epochs;
- ``Recorder``: what train passes to ``model.fit(on_epoch=...)``. It keeps the weights,
  scores each epoch's copy of the model on the training and the test rows, and hands each
  epoch's ``Scores`` to a logger, in order;
- ``LiveLog``: that logger, writing DVCLive's layout under a folder (``plots/metrics/*.tsv``,
  a ``step`` column, the epoch), which ``dvc plots``, VS Code's DVC extension and DVC
  Studio show, growing epoch by epoch while ``dvc exp run`` trains. It contacts nothing.

Scoring an epoch's copy on all 70,000 rows costs about a third of an epoch: it runs on a
thread of its own while the next epoch trains (numpy and OpenBLAS let go of the GIL), and
at most one copy waits for it. The thread only computes: every file is written by the
stage's own thread, so a stop or a failure abandons it without harm.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field, StrictBool

from pipeline import formats, model
from pipeline.artifacts import write_text
from pipeline.schema import Int, Section


class EpochParams(Section):
    """What train records of each epoch."""

    keep: Annotated[Int, Field(ge=1, le=1000)]
    scores: StrictBool


@dataclass(frozen=True)
class Scores:
    """What one epoch left: its training loss, the accuracy of its weights on the training
    and test rows (None where ``epochs.scores`` is off), early stopping's validation score
    (None without it)."""

    epoch: int
    loss: float
    train_accuracy: float | None = None
    test_accuracy: float | None = None
    validation_score: float | None = None

    def metrics(self) -> dict[str, float]:
        """The values that this epoch has, under DVCLive's names (``formats.EPOCH_METRICS``)."""
        values = {
            "loss": self.loss,
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "validation_score": self.validation_score,
        }
        return {
            formats.EPOCH_METRICS[key]: value for key, value in values.items() if value is not None
        }


class KeptWeights:
    """The first layer's weights at epoch 0 and at most ``limit`` epochs after it.

    Every epoch is held until ``limit - 1`` are, then every second, fourth, eighth...:
    when one more would go over, the stride doubles and every other held epoch is let go.
    The latest epoch is held besides, so that the last is always kept, and ``result``
    adds the epoch whose weights the model keeps (early stopping's best) if it is not in.
    So the epochs kept are evenly spaced however many the fit runs, which no one knows
    in advance (early stopping, ``tol``), and the memory is bounded by ``limit + 2``
    layers of weights.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.stride = 1
        self.held: dict[int, np.ndarray] = {}
        self.latest: tuple[int, np.ndarray] | None = None

    def add(self, epoch: int, weights: np.ndarray) -> None:
        """Hold ``weights`` (not copied: the caller's own copy) if ``epoch`` is kept."""
        if epoch:
            self.latest = (epoch, weights)
        if epoch % self.stride:
            return
        self.held[epoch] = weights
        while len(self.held) - 1 > self.limit - 1:  # epoch 0 aside; room for the last
            self.stride *= 2
            self.held = {e: w for e, w in self.held.items() if e % self.stride == 0}

    def result(self, model_epoch: int, model_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The epochs kept, in order, and their weights, one (features, units) layer each:
        those held, the last, and the model's own (``model_weights``, after ``model_epoch``)."""
        held = dict(self.held)
        if self.latest is not None:
            held.setdefault(*self.latest)
        held.setdefault(model_epoch, model_weights)
        epochs = sorted(held)
        return np.array(epochs, dtype=np.int64), np.stack([held[e] for e in epochs])


def layers_held(keep: int) -> int:
    """How many first layers of weights ``KeptWeights(keep)`` holds at most."""
    return keep + 2


@dataclass(frozen=True)
class Rows:
    """The rows each epoch is scored on."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def accuracies(predictor, rows: Rows) -> tuple[float, float]:
    """The accuracy of ``predictor`` on the training and the test rows: the train stage's
    own ``score`` and ``accuracy_score``, so that the last epoch's are metrics.json's."""
    from sklearn import config_context
    from sklearn.metrics import accuracy_score

    # The rows were checked once, before the fit: skip the pass over them that looks for
    # NaN and infinity (scikit-learn's settings are per thread: this one's).
    with config_context(assume_finite=True):
        train = predictor.score(rows.X_train, rows.y_train)
        test = accuracy_score(rows.y_test, predictor.predict(rows.X_test))
    return float(train), float(test)


@dataclass(frozen=True)
class Record:
    """What a fit left epoch by epoch: the kept epochs and their first-layer weights,
    (kept epochs, features, units); the scores of every epoch; the model's epoch."""

    epochs: np.ndarray
    first_layer: np.ndarray
    scores: list[Scores]
    model_epoch: int


class Recorder:
    """``model.fit``'s ``on_epoch``: keeps the weights (``KeptWeights``), scores each epoch
    on ``rows`` (None: not scored) and passes each epoch's ``Scores`` to ``log``, in order.

    Epoch N is scored on a thread while epoch N + 1 trains, and logged when epoch N + 1
    ends (or the fit does): by then its scores are normally there, and waiting for them
    holds the fit back only where scoring is the slower of the two. Use as a context
    manager: the thread is let go however the block ends.
    """

    def __init__(self, *, keep: int, rows: Rows | None, log: Callable[[Scores], None]):
        self.kept = KeptWeights(keep)
        self.rows = rows
        self.log = log
        self.scores: list[Scores] = []
        self._pool: ThreadPool | None = None
        self._pending: tuple[model.Epoch, object] | None = None

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            # Its thread is a daemon that writes nothing: a stop need not wait for it.
            self._pool.terminate()
            self._pool = None

    def __call__(self, epoch: model.Epoch) -> None:
        self.kept.add(epoch.number, model.first_layer_weights(epoch.predictor))
        if epoch.number == 0:
            return
        self._log_pending()
        if self.rows is None:
            self._log(epoch, None)
            return
        if self._pool is None:
            self._pool = ThreadPool(1)
        self._pending = (epoch, self._pool.apply_async(accuracies, (epoch.predictor, self.rows)))

    def _log_pending(self) -> None:
        if self._pending is not None:
            epoch, result = self._pending
            self._pending = None
            self._log(epoch, result.get())

    def _log(self, epoch: model.Epoch, accuracy: tuple[float, float] | None) -> None:
        train, test = accuracy or (None, None)
        scores = Scores(epoch.number, epoch.loss, train, test, epoch.validation_score)
        self.scores.append(scores)
        self.log(scores)

    def finish(self, estimator) -> Record:
        """Log the last epoch's scores; the record of the fit of ``estimator``."""
        self._log_pending()
        model_epoch = model.kept_epoch(estimator)
        epochs, first_layer = self.kept.result(model_epoch, model.first_layer_weights(estimator))
        return Record(epochs, first_layer, self.scores, model_epoch)


def _value(value: float) -> float | str:
    # DVCLive writes NaN and infinity as words; a diverged validation score can be NaN
    return value if math.isfinite(value) else str(value)


class LiveLog:
    """Each epoch's ``Scores`` in DVCLive's layout under ``folder``, as DVCLive's
    ``Live.log_metric`` and ``Live.next_step`` write them: a TSV for each metric
    (``formats.epoch_metric_path``: a ``step`` column, the epoch, and the value), a line
    appended at each epoch so that a reader sees the fit as it goes, and DVCLive's
    summary, ``metrics.json``, rewritten at each epoch. The same epochs give the same
    bytes: no timestamp, no run id, ``\\n`` on every system.

    DVCLive itself is not imported here: it needs DVC in the stage's environment, whose
    dependencies cannot all be installed from wheels on arm64, and it opens the DVC
    repository on start (0.55 s, 9% of the default fit), or initialises one where there
    is none (docs/epochs.md). ``tests/test_epochs.py`` checks that these files are, byte
    for byte, DVCLive's own.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.summary: dict = {}

    def __call__(self, scores: Scores) -> None:
        for name, value in scores.metrics().items():
            path = formats.epoch_metric_path(self.folder, name)
            column = name.rpartition("/")[2]
            path.parent.mkdir(parents=True, exist_ok=True)
            header = "" if path.exists() else f"{formats.EPOCH_STEP}\t{column}\n"
            with path.open("a", encoding="utf-8") as tsv:
                tsv.write(f"{header}{scores.epoch}\t{_value(value)}\n")
            *groups, last = name.split("/")
            level = self.summary
            for group in groups:
                level = level.setdefault(group, {})
            level[last] = _value(value)
        self.summary["step"] = scores.epoch
        # rewritten in place, as DVCLive does: the summary is a plot's file, not a result
        write_text(self.folder / formats.EPOCH_SUMMARY, json.dumps(self.summary, indent=4) + "\n")

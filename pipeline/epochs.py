"""The fit epoch by epoch: the first layer's weights of the epochs kept, exactly, and the
scores after each epoch, logged while the fit runs in DVCLive's layout.

- ``EpochParams``: params.yaml's ``epochs`` section, which train reads;
- ``KeptWeights``: the first layer's weights at epoch 0 and at most ``epochs.keep`` epochs
  after it, evenly spaced, whatever the number of epochs;
- ``Recorder``: what train passes to ``model.fit(on_epoch=...)``. It keeps the weights,
  scores each epoch's copy of the model on the training and the test rows, and hands each
  epoch's ``Scores`` to a logger, in order.

The stage's logger is ``formats.EpochLog``, which writes DVCLive's layout
(``plots/metrics/*.tsv``, a ``step`` column, the epoch) that ``dvc plots``, VS Code's DVC
extension and DVC Studio show, growing epoch by epoch while ``dvc exp run`` trains.
Nothing here contacts anything.

Scoring an epoch's copy on all 70,000 rows costs about a third of an epoch: it runs on a
thread of its own while the next epoch trains (numpy and OpenBLAS let go of the GIL), and
at most one copy waits for it. The thread only computes: every file is written by the
stage's own thread, so a stop or a failure abandons it without harm.
"""

from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from typing import Annotated

import numpy as np
from pydantic import Field, StrictBool

from pipeline import formats, model
from pipeline.schema import Int, Section


class EpochParams(Section):
    """What train records of each epoch."""

    keep: Annotated[Int, Field(ge=1, le=1000)]
    scores: StrictBool


@dataclass(frozen=True)
class Scores:
    """What one epoch left: its training loss, the accuracy of its weights on the training
    and test rows (None where ``epochs.scores`` is off), early stopping's validation score
    (None without it). With early stopping the model holds an earlier epoch's weights
    (``Record.model_epoch``): the last epoch's accuracies are then not metrics.json's."""

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


def layers_held(keep: int, epochs: int) -> int:
    """How many first layers of weights ``KeptWeights(keep)`` holds at most, over a fit of
    at most ``epochs`` epochs (``model.epochs_at_most``): the initial, at most ``keep``
    epochs, and the model's own where early stopping kept another."""
    return min(keep, epochs) + 2


@dataclass(frozen=True)
class Rows:
    """The rows each epoch is scored on."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def accuracies(predictor, rows: Rows) -> tuple[float, float]:
    """The accuracy of ``predictor`` on the training and the test rows: the train stage's
    own ``score`` and ``accuracy_score``, so that the model's epoch's are metrics.json's."""
    from sklearn import config_context
    from sklearn.metrics import accuracy_score

    # The rows were checked once, before the fit: skip the pass over them that looks for
    # NaN and infinity. scikit-learn's settings and numpy's error state are per thread:
    # this one's silences the overflow warnings that model.fit silences in its own.
    with config_context(assume_finite=True), np.errstate(over="ignore", invalid="ignore"):
        train = predictor.score(rows.X_train, rows.y_train)
        test = accuracy_score(rows.y_test, predictor.predict(rows.X_test))
    return float(train), float(test)


@dataclass(frozen=True)
class Record:
    """What a fit left epoch by epoch: the kept epochs and their first-layer weights,
    (kept epochs, features, units), and the epoch whose weights the model holds."""

    epochs: np.ndarray
    first_layer: np.ndarray
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
            # multiprocessing's ThreadPool, not concurrent.futures': its thread is a daemon,
            # which a stop need not wait for (the executor's joins it at exit).
            self._pool = ThreadPool(1)
        self._pending = (epoch, self._pool.apply_async(accuracies, (epoch.predictor, self.rows)))

    def _log_pending(self) -> None:
        if self._pending is not None:
            epoch, result = self._pending
            self._pending = None
            self._log(epoch, result.get())

    def _log(self, epoch: model.Epoch, accuracy: tuple[float, float] | None) -> None:
        train, test = accuracy or (None, None)
        self.log(Scores(epoch.number, epoch.loss, train, test, epoch.validation_score))

    def finish(self, estimator) -> Record:
        """Log the last epoch's scores; the record of the fit of ``estimator``."""
        self._log_pending()
        model_epoch = model.kept_epoch(estimator)
        epochs, first_layer = self.kept.result(model_epoch, model.first_layer_weights(estimator))
        return Record(epochs, first_layer, model_epoch)

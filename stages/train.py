"""Stage train: fit the estimator of ``pipeline/model.py`` on the training digits of the split.

Reads params ``split`` (``pipeline/split.py``: scikit-learn's ``train_test_split``),
``train`` and ``epochs`` (``pipeline/epochs.py``), and the arrays of fetch_and_scale
(memory-mapped; copied only where a shuffled split reorders the rows). Refuses, before
any copy or fit, a split that scikit-learn refuses for the data's size, early stopping
that the training rows cannot hold, and a fit that this machine's memory cannot hold.
Prints the loss of each iteration as the example does, then writes, all or none:
``outputs/model.joblib``, and the files of ``pipeline/formats.py``: ``weights.npz`` (the
first layer's weights, pickle-free, for visualize), ``loss.csv``, ``metrics.json``
(accuracies, final loss, iterations: nothing that varies run to run), ``per_class.csv``
and ``predictions.csv`` (``index``: each test digit's row in images.npy),
``weights_by_epoch.npz`` (the first layer's weights of the epochs kept), ``units.csv``
and ``units.json`` (``pipeline/units.py``: every first-layer unit measured, and the count
of each verdict). As the fit goes, each epoch's loss and accuracies go to ``outputs/epochs/``
in DVCLive's layout: progress, which a failed or stopped run removes.
"""

import logging
from dataclasses import astuple, dataclass

import joblib
import numpy as np
import psutil
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from pipeline import arrays, epochs, formats, model, paths, split, units
from pipeline.artifacts import all_or_none
from pipeline.config import Params, load_params, problems_error
from pipeline.paths import Layout
from pipeline.runner import refuse_direct_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sets:
    """The training and test digits, and each test digit's row in images.npy."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_rows: np.ndarray


def load_split(files: Layout, params: Params, *, available: int) -> Sets:
    """Split the arrays as params.yaml's ``split`` says, once every check has passed: the
    split's sizes, early stopping's, and the memory that the fit needs (``available``
    bytes), the rows that a shuffled split copies included."""
    images = arrays.read_array(files.images, mmap_mode="r")
    labels = arrays.read_array(files.labels)
    rows = split.split_rows(params.split, labels)
    y_train, y_test = rows.take(labels)
    if problems := model.problems(params.train, train_size=len(y_train)):
        raise problems_error(problems)
    model.check_memory(
        params.train,
        y_train,
        n_features=images.shape[1],
        itemsize=images.dtype.itemsize,
        n_test=len(y_test),
        split_copied=rows.copied,
        available=available,
        kept_layers=epochs.layers_held(params.epochs.keep, model.epochs_at_most(params.train)),
        scored_each_epoch=params.epochs.scores,
    )
    X_train, X_test = rows.take(images)
    return Sets(X_train, y_train, X_test, y_test, test_rows=rows.test)


def available_memory() -> int:
    """Bytes of memory that this machine can give now without swapping (the system's
    figure: a container's own memory limit is not seen)."""
    return psutil.virtual_memory().available


def evaluate(estimator, X_train, y_train, y_test, predicted, history) -> dict:
    """The headline metrics: accuracies, final loss and iterations run.

    ``predicted`` is ``estimator.predict(X_test)``, computed once by the caller;
    ``history`` the estimator's (iteration, loss) pairs, ``model.loss_history``.
    """
    iterations, final_loss = history[-1]
    return {
        "train_accuracy": float(estimator.score(X_train, y_train)),
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "final_loss": final_loss,
        "iterations": iterations,
    }


def per_class(classes: np.ndarray, y_test, predicted) -> list[tuple[int, float, float, float, int]]:
    """(digit, precision, recall, f1, support) of each class on the test set."""
    scores = precision_recall_fscore_support(y_test, predicted, labels=classes, zero_division=0)
    return [
        (int(digit), float(p), float(r), float(f), int(n))
        for digit, p, r, f, n in zip(classes, *scores, strict=True)
    ]


def diagnose_units(estimator, initial: np.ndarray, X_test: np.ndarray) -> list[units.Unit]:
    """Every first-layer unit measured on the test digits (``pipeline/units.py``)."""
    active = model.active_fraction(estimator, X_test, min_slope=units.MIN_SLOPE)
    weights = model.first_layer_weights(estimator)
    return units.diagnose(weights, initial, active, units.ink_pixels(X_test))


def fit_recording(sets: Sets, params: Params, folder) -> tuple[object, epochs.Record]:
    """Fit, recording each epoch: its scores go to ``folder`` in DVCLive's layout as it goes."""
    rows = epochs.Rows(sets.X_train, sets.y_train, sets.X_test, sets.y_test)
    log = formats.EpochLog(folder)
    scored = rows if params.epochs.scores else None
    with epochs.Recorder(
        keep=params.epochs.keep, rows=scored, log=lambda s: log.append(s.epoch, s.metrics())
    ) as recorder:
        estimator = model.fit(sets.X_train, sets.y_train, params.train, on_epoch=recorder)
        return estimator, recorder.finish(estimator)


def run(files: Layout) -> dict:
    """Train and write the outputs under ``files``; return the headline metrics."""
    params = load_params(files.params)
    sets = load_split(files, params, available=available_memory())
    with all_or_none() as out:
        estimator, record = fit_recording(sets, params, out.folder(files.epochs))
        predicted = estimator.predict(sets.X_test)
        history = model.loss_history(estimator)
        metrics = evaluate(estimator, sets.X_train, sets.y_train, sets.y_test, predicted, history)
        print(f"Training set score: {metrics['train_accuracy']:f}")
        print(f"Test set score: {metrics['test_accuracy']:f}")
        if record.model_epoch != metrics["iterations"]:
            print(f"early stopping kept the weights of epoch {record.model_epoch}")
        measured = diagnose_units(estimator, record.first_layer[0], sets.X_test)
        print(units.summary(measured))

        joblib.dump(estimator, out.temp(files.model))
        formats.write_weights(out.temp(files.weights), model.first_layer_weights(estimator))
        formats.write_loss(out.temp(files.loss_csv), history)
        formats.write_metrics(out.temp(files.metrics), metrics)
        formats.write_per_class(
            out.temp(files.per_class), per_class(estimator.classes_, sets.y_test, predicted)
        )
        formats.write_predictions(
            out.temp(files.predictions), sets.test_rows, sets.y_test, predicted
        )
        formats.write_weights_by_epoch(
            out.temp(files.weights_by_epoch), record.epochs, record.first_layer, record.model_epoch
        )
        formats.write_units(out.temp(files.units_csv), [astuple(unit) for unit in measured])
        formats.write_unit_counts(out.temp(files.units_metrics), units.counts(measured))
    return metrics


def main() -> None:
    run(paths.PROJECT)


if __name__ == "__main__":
    refuse_direct_run("train")

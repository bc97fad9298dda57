"""Stage train: fit scikit-learn's MLPClassifier on the first ``data.train_size`` digits.

Reads params ``train`` and ``data.train_size`` and the arrays of fetch_and_scale
(memory-mapped, never copied whole). Prints the loss of each iteration as the example
does, then writes, all or none: ``outputs/model.joblib``, and the files of
``stages/formats.py``: ``weights.npz`` (the first layer's weights, pickle-free, for
visualize), ``loss.csv``, ``metrics.json`` (accuracies, final loss, iterations: nothing
that varies run to run), ``per_class.csv`` and ``predictions.csv``.
"""

import logging
import warnings

import joblib
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.neural_network import MLPClassifier

from stages import formats, paths
from stages.artifacts import all_or_none
from stages.config import TrainParams, load_params
from stages.errors import UserError
from stages.paths import Layout
from stages.runner import refuse_direct_run

log = logging.getLogger(__name__)


def load_split(files: Layout, train_size: int):
    """Memory-map the arrays and split them into (X_train, y_train, X_test, y_test)."""
    images = formats.read_array(files.images, mmap_mode="r")
    labels = formats.read_array(files.labels)
    if not 0 < train_size < len(images):
        raise UserError(
            f"data.train_size = {train_size} leaves no test rows: the data has {len(images)} images"
        )
    return images[:train_size], labels[:train_size], images[train_size:], labels[train_size:]


def fit(X: np.ndarray, y: np.ndarray, params: TrainParams) -> MLPClassifier:
    """Fit the classifier, printing the loss of each iteration."""
    model = MLPClassifier(verbose=True, **params.estimator_kwargs())
    # A short max_iter is the example's point: silence the warning it causes, and only it.
    # A fit that diverges is reported below in one line; numpy's overflow warnings on its
    # way there would only bury that line.
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")
        try:
            model.fit(X, y)
        except ValueError as exc:
            if "non-finite" not in str(exc):
                raise
            raise UserError(
                f"training diverged: the weights became infinite or NaN ({exc})."
                f" train.learning_rate_init = {params.learning_rate_init} is likely too large;"
                " lower it and run again"
            ) from None
    return model


def evaluate(model: MLPClassifier, X_train, y_train, X_test, y_test, predicted) -> dict:
    """The headline metrics: accuracies, final loss and iterations run.

    ``predicted`` is ``model.predict(X_test)``, computed once by the caller.
    """
    return {
        "train_accuracy": float(model.score(X_train, y_train)),
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "final_loss": float(model.loss_),
        "iterations": int(model.n_iter_),
    }


def per_class(classes: np.ndarray, y_test, predicted) -> list[tuple[int, float, float, float, int]]:
    """(digit, precision, recall, f1, support) of each class on the test set."""
    scores = precision_recall_fscore_support(y_test, predicted, labels=classes, zero_division=0)
    return [
        (int(digit), float(p), float(r), float(f), int(n))
        for digit, p, r, f, n in zip(classes, *scores, strict=True)
    ]


def loss_history(model: MLPClassifier) -> list[tuple[int, float]]:
    """(iteration, loss) pairs: every iteration's for sgd and adam; lbfgs keeps only its last."""
    if hasattr(model, "loss_curve_"):
        return list(enumerate(map(float, model.loss_curve_), start=1))
    return [(int(model.n_iter_), float(model.loss_))]


def run(files: Layout) -> dict:
    """Train and write the outputs under ``files``; return the headline metrics."""
    params = load_params(files.params)
    X_train, y_train, X_test, y_test = load_split(files, params.data.train_size)
    model = fit(X_train, y_train, params.train)
    predicted = model.predict(X_test)
    metrics = evaluate(model, X_train, y_train, X_test, y_test, predicted)
    print(f"Training set score: {metrics['train_accuracy']:f}")
    print(f"Test set score: {metrics['test_accuracy']:f}")

    with all_or_none() as out:
        joblib.dump(model, out.temp(files.model))
        formats.write_weights(out.temp(files.weights), model.coefs_[0])
        formats.write_loss(out.temp(files.loss_csv), loss_history(model))
        formats.write_metrics(out.temp(files.metrics), metrics)
        formats.write_per_class(
            out.temp(files.per_class), per_class(model.classes_, y_test, predicted)
        )
        formats.write_predictions(out.temp(files.predictions), len(X_train), y_test, predicted)
    return metrics


def main() -> None:
    run(paths.PROJECT)


if __name__ == "__main__":
    refuse_direct_run("train")

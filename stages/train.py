"""Stage train: fit scikit-learn's MLPClassifier on the first ``data.train_size`` digits.

Reads params ``train`` and ``data.train_size`` and the arrays of fetch_and_scale
(memory-mapped, never copied whole). Prints the loss of each iteration as the example
does, then writes ``outputs/model.joblib``, ``outputs/weights.npz`` (the first layer's
weights, pickle-free, for visualize), ``outputs/loss.csv`` (iteration,loss) and
``outputs/metrics.json`` (accuracies, the final loss, and precision, recall and F1 of each
class on the test set; nothing that varies run to run) and ``outputs/predictions.csv``
(index,actual,predicted for each test digit: the confusion matrix and the misclassified
digits that visualize draws).
"""

import logging
import warnings

import joblib
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.neural_network import MLPClassifier

from stages import paths
from stages.artifacts import atomic_path, write_json, write_npz, write_text
from stages.config import TrainParams, load_params
from stages.errors import UserError, run_stage

log = logging.getLogger(__name__)


def load_split(train_size: int):
    """Memory-map the arrays and split them into (X_train, y_train, X_test, y_test)."""
    try:
        images = np.load(paths.IMAGES, mmap_mode="r")
        labels = np.load(paths.LABELS)
    except FileNotFoundError as exc:
        raise UserError(f"{exc.filename} not found: run `dvc repro` to make it") from None
    if not 0 < train_size < len(images):
        raise UserError(
            f"data.train_size = {train_size} leaves no test rows: the data has {len(images)} images"
        )
    return images[:train_size], labels[:train_size], images[train_size:], labels[train_size:]


def fit(X: np.ndarray, y: np.ndarray, params: TrainParams) -> MLPClassifier:
    """Fit the classifier, printing the loss of each iteration."""
    model = MLPClassifier(verbose=True, **params.estimator_kwargs())
    # A short max_iter is the example's point: silence the warning it causes, and only it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")
        model.fit(X, y)
    return model


def evaluate(model: MLPClassifier, X_train, y_train, X_test, y_test, predicted) -> dict:
    """The metrics: accuracies, final loss, iterations run, and per-class test scores.

    ``predicted`` is ``model.predict(X_test)``, computed once by the caller.
    """
    precision, recall, f1, support = precision_recall_fscore_support(
        y_test, predicted, labels=model.classes_, zero_division=0
    )
    per_class = {
        str(label): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
        for label, p, r, f, n in zip(model.classes_, precision, recall, f1, support)
    }
    return {
        "train_accuracy": float(model.score(X_train, y_train)),
        "test_accuracy": float(accuracy_score(y_test, predicted)),
        "final_loss": float(model.loss_),
        "iterations": int(model.n_iter_),
        "test_per_class": per_class,
    }


def predictions_csv(first_index: int, actual: np.ndarray, predicted: np.ndarray) -> str:
    """``index,actual,predicted`` for each test digit; ``index`` is its row in images.npy."""
    pairs = zip(actual.tolist(), predicted.tolist())
    rows = [f"{first_index + i},{a},{p}" for i, (a, p) in enumerate(pairs)]
    return "index,actual,predicted\n" + "\n".join(rows) + "\n"


def loss_history(model: MLPClassifier) -> list[tuple[int, float]]:
    """(iteration, loss) pairs: every iteration's for sgd and adam; lbfgs keeps only its last."""
    if hasattr(model, "loss_curve_"):
        return list(enumerate(map(float, model.loss_curve_), start=1))
    return [(int(model.n_iter_), float(model.loss_))]


def loss_csv(history: list[tuple[int, float]]) -> str:
    """The loss history as CSV, ``iteration,loss``, floats at full (round-trip) precision."""
    rows = [f"{iteration},{loss!r}" for iteration, loss in history]
    return "iteration,loss\n" + "\n".join(rows) + "\n"


def main() -> None:
    params = load_params(paths.PARAMS)
    X_train, y_train, X_test, y_test = load_split(params.data.train_size)
    model = fit(X_train, y_train, params.train)
    predicted = model.predict(X_test)
    metrics = evaluate(model, X_train, y_train, X_test, y_test, predicted)
    print(f"Training set score: {metrics['train_accuracy']:f}")
    print(f"Test set score: {metrics['test_accuracy']:f}")

    with atomic_path(paths.MODEL) as tmp:
        joblib.dump(model, tmp)
    write_npz(paths.WEIGHTS, {"first_layer": model.coefs_[0]})
    write_text(paths.LOSS_CSV, loss_csv(loss_history(model)))
    write_json(paths.METRICS, metrics)
    write_text(paths.PREDICTIONS, predictions_csv(len(X_train), y_test, predicted))


if __name__ == "__main__":
    run_stage(main)

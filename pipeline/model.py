"""The estimator, and all that the pipeline knows about it: scikit-learn's MLPClassifier.

- ``TrainParams``: params.yaml's ``train`` section, the estimator's arguments under their
  own names;
- ``build`` and ``fit``: the estimator, made and trained;
- ``first_layer_weights``: what visualize draws, the input weights of each first-layer
  unit (``drawn_units`` says how many there are, for the grid's check);
- ``loss_history``: what loss.csv records;
- ``each_epoch`` and ``Epoch``: the fit seen epoch by epoch (scikit-learn has no public
  hook for it), for ``pipeline/epochs.py``;
- ``problems``: the params that scikit-learn would refuse only once it sees the data's
  size, found before any work; ``check_memory``: a fit too large for this machine,
  refused before it starts.

Another estimator is a change of this module and of params.yaml's ``train`` section.
"""

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PlainValidator, StrictBool

from pipeline.errors import UserError
from pipeline.schema import Float, Int, Section

# The estimator's name, in the loss curve's title.
NAME = "MLPClassifier"


def _positive_int_or_auto(value: Any) -> int | str:
    if value == "auto":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError("expected a positive integer or 'auto'")


BatchSize = Annotated[int | str, PlainValidator(_positive_int_or_auto)]


class TrainParams(Section):
    """The arguments of scikit-learn's ``MLPClassifier``, under their own names.

    The bounds are scikit-learn's own (``MLPClassifier._parameter_constraints``), or
    narrower where a value would make no sense here: ``random_state`` is a number, so
    that every run gives the same bytes, and ``validation_fraction`` is above 0.
    ``verbose`` and ``warm_start`` are not params: the stage prints each iteration's
    loss, and always trains afresh.
    """

    hidden_layer_sizes: Annotated[list[Annotated[Int, Field(ge=1)]], Field(min_length=1)]
    activation: Literal["identity", "logistic", "tanh", "relu"]
    solver: Literal["lbfgs", "sgd", "adam"]
    alpha: Annotated[Float, Field(ge=0)]
    batch_size: BatchSize
    learning_rate: Literal["constant", "invscaling", "adaptive"]
    learning_rate_init: Annotated[Float, Field(gt=0)]
    power_t: Annotated[Float, Field(ge=0)]
    max_iter: Annotated[Int, Field(ge=1)]
    shuffle: StrictBool
    random_state: Annotated[Int, Field(ge=0, le=2**32 - 1)]
    tol: Annotated[Float, Field(ge=0)]
    momentum: Annotated[Float, Field(ge=0, le=1)]
    nesterovs_momentum: StrictBool
    early_stopping: StrictBool
    validation_fraction: Annotated[Float, Field(gt=0, lt=1)]
    beta_1: Annotated[Float, Field(ge=0, lt=1)]
    beta_2: Annotated[Float, Field(ge=0, lt=1)]
    epsilon: Annotated[Float, Field(gt=0)]
    n_iter_no_change: Annotated[Int, Field(ge=1)]
    max_fun: Annotated[Int, Field(ge=1)]

    def estimator_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``MLPClassifier``."""
        kwargs = self.model_dump()
        kwargs["hidden_layer_sizes"] = tuple(self.hidden_layer_sizes)
        return kwargs


def build(params: TrainParams, *, verbose: bool = False):
    """The estimator that ``params`` describe, not yet fitted."""
    # Imported here, not at the top: every stage reads params.yaml through this module,
    # and fetch_and_scale and visualize need no second of importing scikit-learn for it.
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(verbose=verbose, **params.estimator_kwargs())


def fit(
    X: np.ndarray,
    y: np.ndarray,
    params: TrainParams,
    *,
    on_epoch: "Callable[[Epoch], None] | None" = None,
):
    """Fit the estimator, printing the loss of each iteration as the example does.

    ``on_epoch``, if given, is called with the initial weights and after every epoch
    (``each_epoch``); it sees copies, and changes no number of the fit.
    """
    from sklearn.exceptions import ConvergenceWarning

    estimator = build(params, verbose=True)
    watching = each_epoch(estimator, on_epoch) if on_epoch else contextlib.nullcontext()
    # A short max_iter is the example's point: silence the warning it causes, and only it.
    # A fit that diverges is reported below in one line; numpy's overflow warnings on its
    # way there would only bury that line.
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")
        try:
            with watching:
                estimator.fit(X, y)
        except OverflowError as exc:
            # invscaling's rate, learning_rate_init / (t + 1) ** power_t, overflows Python's
            # float for a large power_t.
            raise UserError(
                f"training overflowed ({exc}): {likely_culprit(params, overflow=True)};"
                " lower it and run again"
            ) from None
        except ValueError as exc:
            if "non-finite" not in str(exc):
                raise
            raise UserError(
                f"training diverged: the weights became infinite or NaN ({exc})."
                f" {likely_culprit(params)}; lower it and run again"
            ) from None
    return estimator


# Above this, the L2 penalty alone drives the weights: scikit-learn's default is 1e-4.
LARGE_ALPHA = 1.0


def likely_culprit(params: TrainParams, *, overflow: bool = False) -> str:
    """The setting most likely to blame for a fit that overflowed or diverged."""
    if overflow and params.learning_rate == "invscaling":
        return (
            f"train.power_t = {params.power_t} with train.learning_rate = invscaling is likely"
            " too large"
        )
    if params.alpha >= LARGE_ALPHA:
        return f"train.alpha = {params.alpha} (the L2 penalty) is likely too large"
    return f"train.learning_rate_init = {params.learning_rate_init} is likely too large"


def first_layer_weights(estimator) -> np.ndarray:
    """The input weights of each unit of the first layer, (n_features, n_units)."""
    return estimator.coefs_[0]


# The slope of each activation at a unit's input, as a share of the slope's largest value.
_RELATIVE_SLOPE = {
    "relu": lambda z: (z > 0).astype(float),
    "logistic": lambda z: 4 * _logistic(z) * (1 - _logistic(z)),
    "tanh": lambda z: 1 - np.tanh(z) ** 2,
    "identity": lambda z: np.ones_like(z),
}


def _logistic(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(z / 2))  # 1 / (1 + e^-z), without overflow


def active_fraction(estimator, X: np.ndarray, *, min_slope: float, rows: int = 1000) -> np.ndarray:
    """For each first-layer unit, the share of the rows of ``X`` on which it is active: its
    activation's slope at the unit's input is at least ``min_slope`` of the slope's
    largest value, so that the unit passes on a gradient and can learn from that row.
    For relu that is where its output is above 0; logistic and tanh units are inactive
    where they saturate; identity units are always active. ``rows`` at a time."""
    weights, bias = estimator.coefs_[0], estimator.intercepts_[0]
    slope = _RELATIVE_SLOPE[estimator.activation]
    active = np.zeros(weights.shape[1], dtype=np.int64)
    for start in range(0, len(X), rows):
        active += (slope(X[start : start + rows] @ weights + bias) >= min_slope).sum(axis=0)
    return active / max(len(X), 1)


def drawn_units(params: TrainParams) -> tuple[int, str]:
    """How many units ``first_layer_weights`` will have, and what in params.yaml says so."""
    return params.hidden_layer_sizes[0], "the first hidden layer (train.hidden_layer_sizes[0])"


def loss_history(estimator) -> list[tuple[int, float]]:
    """(iteration, loss) pairs: every iteration's for sgd and adam; lbfgs keeps only its last."""
    if hasattr(estimator, "loss_curve_"):
        return list(enumerate(map(float, estimator.loss_curve_), start=1))
    return [(int(estimator.n_iter_), float(estimator.loss_))]


@dataclass(frozen=True)
class Epoch:
    """The fit after ``number`` epochs (0: the initial weights, before any).

    ``predictor`` is a copy of the estimator with this epoch's weights, which the fit no
    longer touches: it predicts (``predict``, ``score``) as the estimator did at that
    moment, and ``first_layer_weights(predictor)`` are the epoch's first-layer weights.
    ``loss`` is the epoch's training loss, ``validation_score`` early stopping's score
    (None where there is none: at epoch 0, without early stopping, and for lbfgs).
    """

    number: int
    predictor: Any
    loss: float | None
    validation_score: float | None


# The estimator's methods that ``each_epoch`` wraps. scikit-learn's ``_fit`` calls
# ``_initialize`` once, when a fit starts afresh; ``_fit_stochastic`` (sgd and adam) calls
# ``_update_no_improvement_count`` once at the end of each epoch, after the epoch's
# updates and its loss (its arguments changed in 1.7: the wrapper passes them through).
# lbfgs has no epochs: its fit ends with its last iteration.
_ON_START = "_initialize"
_ON_EPOCH = "_update_no_improvement_count"


class HookBroken(RuntimeError):
    """scikit-learn no longer calls a wrapped method as ``each_epoch`` relies on: a bug
    of this module after an upgrade, never the user's."""


def _snapshot(estimator) -> Any:
    """A copy of ``estimator`` that predicts with its weights of now, whatever the fit does
    next: its own copies of the weights, the rest shared (nothing of it is changed)."""
    predictor = copy.copy(estimator)
    predictor.coefs_ = [w.copy() for w in estimator.coefs_]
    predictor.intercepts_ = [b.copy() for b in estimator.intercepts_]
    return predictor


@contextlib.contextmanager
def each_epoch(estimator, on_epoch: Callable[[Epoch], None]) -> Iterator[None]:
    """Within the block, the estimator's fit calls ``on_epoch`` with its initial weights
    (epoch 0) and after each epoch (or, for lbfgs, once, after its last iteration).

    The wrappers are attributes of this estimator alone, removed when the block ends, so
    that ``joblib.dump`` of it pickles scikit-learn's classes and nothing of ours. Where
    the fit ends without error, the calls are counted against ``n_iter_``: an upgrade of
    scikit-learn that stops calling them once per epoch raises ``HookBroken`` instead of
    giving a wrong record.
    """
    calls = {_ON_START: 0, _ON_EPOCH: 0}
    interrupted = []
    stochastic = estimator.solver != "lbfgs"

    def wrap(name: str, after: Callable[[], None]) -> None:
        method = getattr(estimator, name)

        def wrapper(*args, **kwargs):
            try:
                result = method(*args, **kwargs)
                calls[name] += 1
                after()
            except KeyboardInterrupt:
                # scikit-learn's fit catches it and returns (outside the stage, whose
                # runner turns Ctrl-C into StageStopped): the count is then short.
                interrupted.append(name)
                raise
            return result

        setattr(estimator, name, wrapper)

    def started() -> None:
        on_epoch(Epoch(0, _snapshot(estimator), None, None))

    def epoch_ended() -> None:
        if len(estimator.loss_curve_) != estimator.n_iter_:
            raise HookBroken(
                f"scikit-learn called {_ON_EPOCH} at iteration {estimator.n_iter_} with"
                f" {len(estimator.loss_curve_)} losses recorded: pipeline/model.py's"
                " each_epoch needs updating for this version"
            )
        scores = estimator.validation_scores_
        on_epoch(
            Epoch(
                estimator.n_iter_,
                _snapshot(estimator),
                float(estimator.loss_),
                float(scores[-1]) if scores else None,
            )
        )

    wrap(_ON_START, started)
    if stochastic:
        wrap(_ON_EPOCH, epoch_ended)
    try:
        yield
    finally:
        for name in (_ON_START, _ON_EPOCH):
            estimator.__dict__.pop(name, None)
    expected = {_ON_START: 1, _ON_EPOCH: estimator.n_iter_ if stochastic else 0}
    if calls != expected and not interrupted:
        raise HookBroken(
            f"scikit-learn's fit made the calls {calls} where {expected} were expected:"
            " pipeline/model.py's each_epoch needs updating for this version"
        )
    if not stochastic:
        on_epoch(Epoch(estimator.n_iter_, _snapshot(estimator), float(estimator.loss_), None))


def epochs_at_most(params: TrainParams) -> int:
    """How many epochs ``each_epoch`` reports at most: ``max_iter`` for sgd and adam, one
    for lbfgs, which has none (its last iteration)."""
    return 1 if params.solver == "lbfgs" else params.max_iter


def kept_epoch(estimator) -> int:
    """The epoch whose weights the fitted estimator holds: with early stopping the one of
    the best validation score (scikit-learn keeps the first best), else the last."""
    kept, best = int(estimator.n_iter_), -np.inf
    # scikit-learn's own rule: a score replaces the best only where it is greater (never NaN)
    for epoch, score in enumerate(getattr(estimator, "validation_scores_", None) or (), start=1):
        if score > best:
            kept, best = epoch, score
    return kept


def _held_out(params: TrainParams, n_samples: int) -> int:
    """The rows early stopping sets aside to validate on: ``train_test_split``'s count."""
    if not params.early_stopping or params.solver == "lbfgs":  # lbfgs does not stop early
        return 0
    return math.ceil(params.validation_fraction * n_samples)


def problems(params: TrainParams, *, train_size: int) -> list[str]:
    """What scikit-learn would refuse in ``params`` once it sees the split's ``train_size``
    training rows, one line each: early stopping's validation set, too small or all the rows.

    (A two-class training set would also be split by class; MNIST's rows hold more
    classes than the few rows for which that could fail.)
    """
    held_out = _held_out(params, train_size)
    if not held_out or (held_out >= 2 and train_size - held_out >= 1):
        return []
    turn_off = "or set train.early_stopping to false"
    rows = f"the split's {train_size} training rows"
    if train_size < 3:
        return [
            f"{rows} are too few for train.early_stopping: scikit-learn needs 2 to validate"
            f" on and 1 to train on; make split.train_size at least 3, {turn_off}"
        ]
    fraction = f"train.validation_fraction = {params.validation_fraction}"
    if held_out < 2:
        return [
            f"{fraction} sets aside {held_out} of {rows} for early stopping's validation"
            f" set, and scikit-learn needs at least 2: make it more than 1/{train_size},"
            f" {turn_off}"
        ]
    return [
        f"{fraction} sets aside all of {rows} for early stopping's validation set, leaving"
        f" none to train on: make it at most {train_size - 1}/{train_size}, {turn_off}"
    ]


# Copies of the weights and biases that the stage certainly holds at once, during the fit
# and after it: the weights, the best-so-far copy and the gradients; the solver's state
# (sgd: velocities; adam: two moments; lbfgs: the weights and gradient packed into one
# vector each, and scipy's L-BFGS-B history of 10 pairs of vectors). A fitted estimator
# keeps the weights and the solver's state.
WEIGHT_COPIES = {"sgd": (4, 2), "adam": (5, 3), "lbfgs": (25, 2)}


def memory_needed(
    params: TrainParams,
    *,
    n_samples: int,
    n_features: int,
    n_classes: int,
    n_test: int,
    itemsize: int,
    split_copied: int = 0,
    kept_layers: int = 0,
    scored_each_epoch: bool = False,
) -> int:
    """Bytes that the train stage's arrays certainly need at once: a lower bound.

    It counts, in the images' float size: the ``split_copied`` rows that a shuffled split
    copies out of the memory-mapped images, held from the fit to the scoring; during the
    fit, the copies of the weights and biases (``WEIGHT_COPIES``), a batch's activations and
    their deltas (lbfgs's batch is every row), the copies of the rows that shuffled batches
    and early stopping's split make; after the fit, the weights kept and the outputs of two
    layers at a time in the forward pass that scores every training (or test) row. Recording
    each epoch (``pipeline/epochs.py``) adds, during the fit, ``kept_layers`` first layers
    of weights and a copy of every weight (the epoch's model), and, ``scored_each_epoch``, a
    second copy (one epoch waits to be scored while the next is copied) and the scoring's
    forward pass on every training (or test) row. It leaves out short-lived temporaries (the
    peaks that tests/test_model.py measures are 1 to 1.7 times the bound) and the memory-
    mapped images, which the page cache holds and can give back.
    """
    widths = [*params.hidden_layer_sizes, n_classes if n_classes > 2 else 1]
    weights = sum((fan_in + 1) * fan_out for fan_in, fan_out in pairwise([n_features, *widths]))
    forward = max(a + b for a, b in pairwise([0, *widths]))
    during, after = WEIGHT_COPIES[params.solver]
    held_out = _held_out(params, n_samples)
    if params.solver == "lbfgs":
        batch, copied = n_samples, 0  # lbfgs computes on the rows as they are
    else:
        batch = min(200 if params.batch_size == "auto" else params.batch_size, n_samples - held_out)
        copied = (n_samples if held_out else 0) + (batch if params.shuffle else 0)
    fitting = during * weights + 2 * batch * sum(widths) + copied * n_features
    if kept_layers or scored_each_epoch:
        copies = 2 if scored_each_epoch else 1
        fitting += kept_layers * n_features * widths[0] + copies * weights
    if scored_each_epoch:
        fitting += max(n_samples, n_test) * forward
    scoring = after * weights + max(n_samples, n_test) * forward
    return itemsize * (split_copied * n_features + max(fitting, scoring))


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"


def check_memory(
    params: TrainParams,
    y: np.ndarray,
    *,
    n_features: int,
    itemsize: int,
    n_test: int,
    split_copied: int,
    available: int,
    kept_layers: int = 0,
    scored_each_epoch: bool = False,
):
    """Refuse, in one line, a fit on the labels ``y`` (one a training row) that certainly
    needs more than ``available`` bytes (``memory_needed``), before it starts."""
    n_samples = len(y)
    needed = memory_needed(
        params,
        n_samples=n_samples,
        n_features=n_features,
        n_classes=len(np.unique(y)),
        n_test=n_test,
        itemsize=itemsize,
        split_copied=split_copied,
        kept_layers=kept_layers,
        scored_each_epoch=scored_each_epoch,
    )
    if needed > available:
        copies = (
            f", and the {split_copied} rows that the shuffled split copies" if split_copied else ""
        )
        smaller = "or split.train_size"
        if kept_layers:
            copies += (
                f", with {kept_layers} first layers of weights kept epoch by epoch (epochs.keep)"
            )
            smaller = "split.train_size or epochs.keep"
        raise UserError(
            f"training needs at least {_size(needed)} of memory (its largest arrays, counted"
            f" for train.hidden_layer_sizes = {params.hidden_layer_sizes} and"
            f" train.solver = {params.solver} on {n_samples} rows of {n_features} values{copies}),"
            f" but this machine has {_size(available)} available: make the hidden layers"
            f" smaller, {smaller}"
        )

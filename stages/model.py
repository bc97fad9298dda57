"""The estimator, and all that the pipeline knows about it: scikit-learn's MLPClassifier.

- ``TrainParams``: params.yaml's ``train`` section, the estimator's arguments under their
  own names;
- ``build`` and ``fit``: the estimator, made and trained;
- ``first_layer_weights``: what visualize draws, the input weights of each first-layer
  unit (``drawn_units`` says how many there are, for the grid's check);
- ``loss_history``: what loss.csv records.

Another estimator is a change of this module and of params.yaml's ``train`` section.
"""

import warnings
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PlainValidator, StrictBool

from stages.errors import UserError
from stages.schema import Float, Int, Section

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
    power_t: Float
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


def fit(X: np.ndarray, y: np.ndarray, params: TrainParams):
    """Fit the estimator, printing the loss of each iteration as the example does."""
    from sklearn.exceptions import ConvergenceWarning

    estimator = build(params, verbose=True)
    # A short max_iter is the example's point: silence the warning it causes, and only it.
    # A fit that diverges is reported below in one line; numpy's overflow warnings on its
    # way there would only bury that line.
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")
        try:
            estimator.fit(X, y)
        except ValueError as exc:
            if "non-finite" not in str(exc):
                raise
            raise UserError(
                f"training diverged: the weights became infinite or NaN ({exc})."
                f" train.learning_rate_init = {params.learning_rate_init} is likely too large;"
                " lower it and run again"
            ) from None
    return estimator


def first_layer_weights(estimator) -> np.ndarray:
    """The input weights of each unit of the first layer, (n_features, n_units)."""
    return estimator.coefs_[0]


def drawn_units(params: TrainParams) -> tuple[int, str]:
    """How many units ``first_layer_weights`` will have, and what in params.yaml says so."""
    return params.hidden_layer_sizes[0], "the first hidden layer (train.hidden_layer_sizes[0])"


def loss_history(estimator) -> list[tuple[int, float]]:
    """(iteration, loss) pairs: every iteration's for sgd and adam; lbfgs keeps only its last."""
    if hasattr(estimator, "loss_curve_"):
        return list(enumerate(map(float, estimator.loss_curve_), start=1))
    return [(int(estimator.n_iter_), float(estimator.loss_))]

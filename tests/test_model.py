"""pipeline/model.py: the one home of the estimator, its schema against scikit-learn's own
rules, early stopping's split checked before any work, and the memory estimate."""

import re
import tracemalloc
import typing
import warnings

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.exceptions import ConvergenceWarning

from pipeline import model, paths
from pipeline.errors import UserError
from pipeline.model import TrainParams
from pipeline.params import read_yaml

# What only the estimator's module may know: its class, its fitted attributes, its args.
ESTIMATOR_WORDS = re.compile(
    r"MLPClassifier|neural_network|\bcoefs_|\bloss_curve_|\bn_iter_\b|\bloss_\b|hidden_layer"
)


def example_train() -> dict:
    return read_yaml(paths.PROJECT.params)["train"]


def with_train(**changes) -> TrainParams:
    return TrainParams.model_validate(example_train() | changes)


def test_only_the_model_module_knows_the_estimator():
    # published.py is the exception: its records are the published versions' reference.
    exempt = {paths.ROOT / "pipeline" / "model.py", paths.ROOT / "pipeline" / "published.py"}
    knowing = {
        f"{package}/{path.name}": [
            line.strip() for line in path.read_text().splitlines() if ESTIMATOR_WORDS.search(line)
        ]
        for package in ("stages", "pipeline", "tools")
        for path in sorted((paths.ROOT / package).glob("*.py"))
        if path not in exempt
    }
    assert {name: lines for name, lines in knowing.items() if lines} == {}


def test_build_makes_the_named_estimator_with_every_param():
    params = with_train()
    estimator = model.build(params)
    assert type(estimator).__name__ == model.NAME
    assert estimator.get_params() == params.estimator_kwargs() | {
        "verbose": False,
        "warm_start": False,
    }


def probes(field: str) -> list:
    """Values to try for ``field``: bounds and either side of them, and its options."""
    options = list(typing.get_args(TrainParams.model_fields[field].annotation))
    numbers = [-1, -1e-9, 0, 1e-9, 1e-5, 0.5, 0.999, 1, 1.5, 2, 2**32 - 1, 2**32]
    return [*numbers, *[o for o in options if isinstance(o, str)], "auto", [1], [3, 2]]


@pytest.mark.parametrize("field", list(TrainParams.model_fields))
def test_scikit_learn_accepts_every_value_the_schema_accepts(field):
    # power_t: -1 passed the schema and failed in the middle of the stage.
    refused = []
    for value in probes(field):
        try:
            params = with_train(**{field: value})
        except ValidationError:
            continue
        try:
            model.build(params)._validate_params()  # scikit-learn's own parameter check
        except ValueError as exc:
            refused.append((value, str(exc)))
    assert refused == []


# --- early stopping: the validation split, checked before any work ----------------------


@pytest.mark.parametrize(
    ("train_size", "fraction", "expected"),
    [
        (
            60000,
            0.00001,
            "train.validation_fraction = 1e-05 sets aside 1 of the split's 60000 training rows"
            " for early stopping's validation set, and scikit-learn needs at least 2: make it"
            " more than 1/60000, or set train.early_stopping to false",
        ),
        (
            60,
            0.999,
            "train.validation_fraction = 0.999 sets aside all of the split's 60 training rows"
            " for early stopping's validation set, leaving none to train on: make it at most"
            " 59/60, or set train.early_stopping to false",
        ),
        (
            2,
            0.1,
            "the split's 2 training rows are too few for train.early_stopping: scikit-learn"
            " needs 2 to validate on and 1 to train on; make split.train_size at least 3, or"
            " set train.early_stopping to false",
        ),
    ],
)
def test_an_impossible_validation_split_is_one_line(train_size, fraction, expected):
    params = with_train(early_stopping=True, validation_fraction=fraction)
    assert model.problems(params, train_size=train_size) == [expected]


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_without_early_stopping_or_with_lbfgs_no_rows_are_set_aside(solver):
    assert model.problems(with_train(solver=solver), train_size=2) == []
    stopping = with_train(solver=solver, early_stopping=True, validation_fraction=1e-5)
    assert (model.problems(stopping, train_size=2) == []) == (solver == "lbfgs")


@pytest.mark.parametrize("train_size", range(2, 13))
def test_the_split_check_agrees_with_scikit_learn(train_size):
    # The reference: scikit-learn's own fit, on as many rows, refuses exactly what the
    # check refuses. Labels cycle through 10 digits, as MNIST's first rows do.
    rng = np.random.default_rng(0)
    X, y = rng.random((train_size, 4)), np.arange(train_size) % 10
    for fraction in (0.05, 0.1, 0.2, 1 / 3, 0.5, 0.7, 0.9, 0.95):
        params = with_train(
            early_stopping=True, validation_fraction=fraction, hidden_layer_sizes=[3], max_iter=1
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.build(params).fit(X, y)
            fits = True
        except ValueError:
            fits = False
        assert fits == (model.problems(params, train_size=train_size) == []), fraction


# --- memory ------------------------------------------------------------------------------


def test_memory_needed_by_hand():
    # 3 features -> 4 hidden units -> 3 classes: (3 + 1) x 4 + (4 + 1) x 3 = 31 weights;
    # 4 + 3 = 7 units, which a forward pass also holds at once.
    sizes = dict(n_samples=10, n_features=3, n_classes=3, n_test=5, itemsize=8)
    sgd = with_train(hidden_layer_sizes=[4])
    # fit: 4 copies of the weights; activations and deltas of a batch of all 10 rows, and
    # the batch's shuffled copy of the rows
    assert model.memory_needed(sgd, **sizes) == 8 * (4 * 31 + 2 * 10 * 7 + 10 * 3)
    unshuffled = with_train(hidden_layer_sizes=[4], shuffle=False)
    assert model.memory_needed(unshuffled, **sizes) == 8 * (4 * 31 + 2 * 10 * 7)
    # scoring 1000 rows outweighs the fit (batches of 200): 2 copies kept, 1000 rows x 7
    assert model.memory_needed(sgd, **sizes | {"n_samples": 1000}) == 8 * (2 * 31 + 1000 * 7)
    # early stopping: 2 of 10 rows held out, batches of the other 8; the split copies all 10
    stopping = with_train(hidden_layer_sizes=[4], early_stopping=True, validation_fraction=0.2)
    assert model.memory_needed(stopping, **sizes) == 8 * (4 * 31 + 2 * 8 * 7 + (10 + 8) * 3)
    lbfgs = with_train(hidden_layer_sizes=[4], solver="lbfgs")
    assert model.memory_needed(lbfgs, **sizes) == 8 * (25 * 31 + 2 * 10 * 7)
    # two classes need one output unit (21 weights); float32 images halve it all
    binary = sizes | {"n_classes": 2, "itemsize": 4}
    assert model.memory_needed(sgd, **binary) == 4 * (4 * 21 + 2 * 10 * 5 + 10 * 3)


SHAPES = [
    # (hidden_layer_sizes, rows, features): the example's shape, one wide layer, deep ones
    ([50], 1000, 784),
    ([1000], 100, 200),
    ([400, 30], 300, 40),
    ([100, 100, 100], 2000, 20),
]


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize(("hidden", "rows", "features"), SHAPES)
def test_the_bound_is_below_what_the_stage_allocates_and_near_it(
    solver, early_stopping, hidden, rows, features
):
    # What train.run does with the arrays, measured by tracemalloc (numpy reports to it).
    rng = np.random.default_rng(0)
    X, y, X_test = rng.random((rows, features)), np.arange(rows) % 10, rng.random((100, features))
    params = with_train(
        solver=solver, hidden_layer_sizes=hidden, max_iter=2, early_stopping=early_stopping
    )
    bound = model.memory_needed(
        params, n_samples=rows, n_features=features, n_classes=10, n_test=100, itemsize=8
    )
    estimator = model.build(params)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(X, y)
        estimator.predict(X_test)
        estimator.score(X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 1 <= peak / bound < 1.8


def test_a_fit_larger_than_the_memory_available_is_refused_in_one_line():
    params = with_train(hidden_layer_sizes=[4])
    y = np.arange(10) % 3
    sizes = {"n_features": 3, "itemsize": 8, "n_test": 5, "split_copied": 0}
    needed = 8 * (4 * 31 + 2 * 10 * 7 + 10 * 3)  # test_memory_needed_by_hand's first case
    model.check_memory(params, y, **sizes, available=needed)  # just enough: no error
    with pytest.raises(UserError) as refused:
        model.check_memory(params, y, **sizes, available=needed - 1)
    assert str(refused.value) == (
        "training needs at least 2.3 KiB of memory (its largest arrays, counted for"
        " train.hidden_layer_sizes = [4] and train.solver = sgd on 10 rows of 3 values), but"
        " this machine has 2.3 KiB available: make the hidden layers smaller, or"
        " split.train_size"
    )
    # A shuffled split's copy of the rows counts too: 15 rows of 3 values more.
    copied = needed + 8 * 15 * 3
    model.check_memory(params, y, **sizes | {"split_copied": 15}, available=copied)
    with pytest.raises(UserError, match="and the 15 rows that the shuffled split copies"):
        model.check_memory(params, y, **sizes | {"split_copied": 15}, available=copied - 1)

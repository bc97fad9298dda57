"""The split: scikit-learn's train_test_split itself, its rows findable, its copies counted."""

import numpy as np
import pytest
import yaml
from sklearn.model_selection import train_test_split

from pipeline import formats, paths, split
from pipeline.errors import UserError
from pipeline.params import read_yaml
from pipeline.split import SplitParams
from stages import train
from tests.conftest import N_TEST, N_TRAIN

N = N_TRAIN + N_TEST
DEFAULT = read_yaml(paths.PROJECT.params)["split"]


def params(**changes) -> SplitParams:
    return SplitParams.model_validate(DEFAULT | changes)


def labels(n: int = N) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


def test_the_default_is_mnists_own_split_and_copies_nothing(tmp_path):
    rows = split.split_rows(params(train_size=N_TRAIN), labels())
    np.testing.assert_array_equal(rows.train, np.arange(N_TRAIN))
    np.testing.assert_array_equal(rows.test, np.arange(N_TRAIN, N))
    path = tmp_path / "images.npy"
    np.save(path, np.arange(N * 4, dtype=np.float64).reshape(N, 4))
    images = np.load(path, mmap_mode="r")
    X_train, X_test = rows.take(images)
    # Views of the memory-mapped file: the 70,000 rows are never copied.
    assert np.shares_memory(X_train, images) and np.shares_memory(X_test, images)
    assert rows.copied == 0
    np.testing.assert_array_equal(X_test, images[N_TRAIN:])


SHUFFLED = [
    {"train_size": None, "test_size": 0.7, "shuffle": True, "random_state": 0},  # the gallery's
    {"train_size": 0.3, "test_size": None, "shuffle": True, "random_state": 0},
    {"train_size": 50, "test_size": 20, "shuffle": True, "random_state": 7},
    {"train_size": 40, "test_size": 0.25, "shuffle": True, "random_state": 3, "stratify": True},
    {"train_size": None, "test_size": None, "shuffle": True, "random_state": 1},
    {"train_size": 30, "test_size": 10, "shuffle": False},  # 40 rows left out
]


@pytest.mark.parametrize("changes", SHUFFLED)
def test_the_rows_are_train_test_splits_own_in_its_order(changes):
    # The reference: train_test_split on the arrays themselves, as the gallery calls it.
    rng = np.random.default_rng(0)
    X, y = rng.random((N, 3)), labels()
    kwargs = {k: v for k, v in (DEFAULT | changes).items() if k != "stratify"}
    expected = train_test_split(X, y, **kwargs, stratify=y if changes.get("stratify") else None)
    rows = split.split_rows(params(**changes), y)
    X_train, X_test = rows.take(X)
    y_train, y_test = rows.take(y)
    for found, reference in zip((X_train, X_test, y_train, y_test), expected, strict=True):
        np.testing.assert_array_equal(found, reference)
    shuffled = changes["shuffle"]
    assert rows.copied == (len(X_train) + len(X_test) if shuffled else 0)


def test_stratified_keeps_each_digits_share_in_both_sets():
    rows = split.split_rows(params(train_size=0.5, shuffle=True, stratify=True), labels(200))
    for chosen in (rows.train, rows.test):
        assert np.bincount(labels(200)[chosen]).tolist() == [10] * 10


@pytest.mark.parametrize(
    ("changes", "n", "reason"),
    [
        (
            {"train_size": 60, "test_size": 30},
            N,
            "The sum of train_size and test_size = 90, should be smaller than the number of"
            " samples 80. Reduce test_size and/or train_size.",
        ),
        (
            {"train_size": None, "test_size": 80},
            N,
            "test_size=80 should be either positive and smaller than the number of samples 80"
            " or a float in the (0, 1) range",
        ),
        (
            {"train_size": 0.01, "test_size": None},
            N,
            "With n_samples=80, test_size=None and train_size=0.01, the resulting train set"
            " will be empty. Adjust any of the aforementioned parameters.",
        ),
    ],
)
def test_sizes_that_scikit_learn_refuses_for_the_data_are_its_own_words(changes, n, reason):
    with pytest.raises(UserError) as refused:
        split.split_rows(params(**changes), labels(n))
    assert str(refused.value).endswith(f"scikit-learn's train_test_split says: {reason}")
    assert str(refused.value).startswith("params.yaml's split (train_size = ")


def test_stratifying_a_digit_of_a_single_row_is_refused_in_scikit_learns_words():
    y = labels()
    y[-1] = 11  # one row of its own class
    with pytest.raises(UserError, match=r"least populated class(es)? in y ha(s|ve) only 1 member"):
        split.split_rows(params(train_size=0.5, shuffle=True, stratify=True), y)


@pytest.fixture
def shuffled(scaled_repo):
    """The tiny repository's arrays in place and a shuffled, stratified split."""
    from pipeline.paths import Layout

    files = Layout.under(scaled_repo.root)
    raw = read_yaml(files.params)
    raw["split"] |= {"train_size": None, "test_size": 0.25, "shuffle": True, "stratify": True}
    files.params.write_text(yaml.safe_dump(raw))
    return files


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_shuffled_split_keeps_each_test_digits_row_in_the_predictions(shuffled):
    train.run(shuffled)
    images, digits = np.load(shuffled.images), np.load(shuffled.labels)
    rows = split.split_rows(params(**read_yaml(shuffled.params)["split"]), digits)
    predictions = formats.read_predictions(shuffled.predictions)
    assert len(predictions) == N_TEST  # 25% of 80
    np.testing.assert_array_equal(predictions[:, 0], rows.test)
    assert sorted(predictions[:, 0]) != list(range(N_TRAIN, N))  # other rows than MNIST's split
    np.testing.assert_array_equal(predictions[:, 1], digits[predictions[:, 0]])
    # Predicting the digits found by their index gives the predictions again.
    import joblib

    fitted = joblib.load(shuffled.model)
    np.testing.assert_array_equal(fitted.predict(images[predictions[:, 0]]), predictions[:, 2])
    support = [int(line.split(",")[4]) for line in shuffled.per_class.read_text().splitlines()[1:]]
    assert support == [2] * 10  # stratified: 2 of each digit's 8 rows test


def test_early_stopping_is_checked_against_the_splits_training_rows(shuffled):
    raw = read_yaml(shuffled.params)
    raw["split"] |= {"train_size": 2, "test_size": None, "stratify": False}
    raw["train"] |= {"early_stopping": True}
    shuffled.params.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError) as refused:
        train.run(shuffled)
    assert str(refused.value).splitlines() == [
        "params.yaml has 1 problem:",
        "  the split's 2 training rows are too few for train.early_stopping: scikit-learn"
        " needs 2 to validate on and 1 to train on; make split.train_size at least 3, or set"
        " train.early_stopping to false",
    ]
    assert not shuffled.model.exists()


def test_the_memory_check_counts_the_rows_that_a_shuffled_split_copies(shuffled, monkeypatch):
    seen = {}
    monkeypatch.setattr(train.model, "check_memory", lambda *args, **kwargs: seen.update(kwargs))
    from pipeline.config import load_params

    train.load_split(shuffled, load_params(shuffled.params), available=2**50)
    assert seen["split_copied"] == N  # every row, in another order
    assert seen["n_test"] == N_TEST

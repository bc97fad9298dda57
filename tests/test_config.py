"""params.yaml: every key checked, every problem named, numbers in any YAML spelling."""

import copy

import pytest
import yaml

from stages import paths
from stages.config import load_params, parse_params
from stages.errors import UserError


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(paths.PARAMS.read_text())


def problems(raw: dict) -> list[str]:
    with pytest.raises(UserError) as info:
        parse_params(raw)
    header, *lines = str(info.value).splitlines()
    assert header == f"params.yaml has {len(lines)} problem{'s' if len(lines) > 1 else ''}:"
    return [line.strip() for line in lines]


def test_defaults_are_the_examples_settings():
    params = load_params(paths.PARAMS)
    assert params.data.pixel_dtype == "float64"
    assert params.data.train_size == 60000
    assert params.data.source == "idx"
    kwargs = params.train.estimator_kwargs()
    example = dict(
        hidden_layer_sizes=(50,), max_iter=10, alpha=1e-4, solver="sgd",
        tol=1e-4, random_state=1, learning_rate_init=0.1,
    )
    assert {k: kwargs[k] for k in example} == example
    assert (params.visualize.rows, params.visualize.cols, params.visualize.range_factor) == (4, 4, 0.5)


def test_every_default_matches_mlpclassifier_defaults_but_the_examples():
    from sklearn.neural_network import MLPClassifier

    defaults = MLPClassifier().get_params()
    kwargs = load_params(paths.PARAMS).train.estimator_kwargs()
    changed = {k for k, v in kwargs.items() if defaults[k] != v}
    assert changed == {"hidden_layer_sizes", "max_iter", "solver", "learning_rate_init", "random_state"}
    assert set(defaults) - set(kwargs) == {"verbose", "warm_start"}


@pytest.mark.parametrize("spelling", ["1e-05", "1.0e-5", "0.00001", 1e-05])
def test_numbers_in_any_yaml_spelling_are_floats(raw, spelling):
    raw["train"]["alpha"] = spelling
    assert parse_params(raw).train.alpha == 1e-05


def test_hand_edit_1e_minus_4_reads_as_float():
    # PyYAML reads 1e-4 (no dot) as a string: the float field must parse it.
    raw = yaml.safe_load(paths.PARAMS.read_text().replace("alpha: 0.0001", "alpha: 1e-4"))
    assert raw["train"]["alpha"] == "1e-4"
    assert parse_params(raw).train.alpha == 1e-4


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "alpha", "a lot", "train.alpha: Input should be a valid number"),
        ("train", "alpha", -1, "train.alpha: Input should be greater than or equal to 0 (got -1)"),
        ("train", "learning_rate_init", 0, "train.learning_rate_init: Input should be greater than 0"),
        ("train", "max_iter", 0, "train.max_iter: Input should be greater than or equal to 1 (got 0)"),
        ("train", "max_iter", 2.5, "train.max_iter: Input should be a valid integer"),
        ("train", "max_iter", True, "train.max_iter: expected a number, not a boolean (got True)"),
        ("train", "solver", "sdg", "train.solver: Input should be 'lbfgs', 'sgd' or 'adam' (got 'sdg')"),
        ("train", "hidden_layer_sizes", [], "train.hidden_layer_sizes: List should have at least 1 item"),
        ("train", "hidden_layer_sizes", 50, "train.hidden_layer_sizes: Input should be a valid list (got 50)"),
        ("train", "hidden_layer_sizes", [50, 0], "train.hidden_layer_sizes.1: Input should be greater than or equal to 1 (got 0)"),
        ("train", "batch_size", 0, "train.batch_size: expected a positive integer or 'auto' (got 0)"),
        ("train", "shuffle", "yes", "train.shuffle: Input should be a valid boolean (got 'yes')"),
        ("train", "alpha", float("nan"), "train.alpha: Input should be a finite number"),
        ("data", "pixel_dtype", "float16", "data.pixel_dtype: Input should be 'float32' or 'float64' (got 'float16')"),
        ("data", "train_size", 0, "data.train_size: Input should be greater than or equal to 1 (got 0)"),
        ("data", "source", "web", "data.source: Input should be 'idx' or 'openml' (got 'web')"),
        ("visualize", "rows", 0, "visualize.rows: Input should be greater than or equal to 1 (got 0)"),
    ],
)
def test_bad_value_is_named_with_key_and_value(raw, section, key, value, expected):
    raw[section][key] = value
    [line] = problems(raw)
    assert line.startswith(expected)


def test_unknown_key_suggests_the_nearest(raw):
    raw["train"]["learning_rate_int"] = 0.2
    assert problems(raw) == ["train.learning_rate_int: unknown key; did you mean 'learning_rate_init'?"]


def test_unknown_section_is_rejected(raw):
    raw["trian"] = {}
    assert problems(raw) == ["trian: unknown key; did you mean 'train'?"]


def test_missing_section_and_key_are_named(raw):
    del raw["visualize"]
    del raw["train"]["momentum"]
    assert problems(raw) == ["train.momentum: missing", "visualize: missing"]


def test_every_problem_is_reported_at_once(raw):
    bad = copy.deepcopy(raw)
    bad["train"]["alpha"] = -1
    bad["train"]["solver"] = "sdg"
    bad["visualize"]["colz"] = 4
    del bad["visualize"]["cols"]
    assert [line.split(":")[0] for line in problems(bad)] == [
        "train.solver", "train.alpha", "visualize.cols", "visualize.colz",
    ]


def test_grid_larger_than_first_layer_is_refused(raw):
    raw["visualize"]["rows"] = 8
    raw["visualize"]["cols"] = 8
    assert problems(raw) == [
        "visualize.rows x visualize.cols = 8 x 8 = 64 cells, but the first hidden layer has"
        " only 50 units (train.hidden_layer_sizes[0]); make the grid at most 50 cells"
    ]


def test_params_are_frozen():
    params = load_params(paths.PARAMS)
    with pytest.raises(Exception, match="frozen"):
        params.train.alpha = 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train: [unclosed", "is not valid YAML"),
        ("", "expected sections data, train and visualize, got None"),
        ("- a list", "expected sections data, train and visualize"),
    ],
)
def test_unreadable_params_file(tmp_path, text, expected):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=expected):
        load_params(path)


def test_missing_params_file(tmp_path):
    with pytest.raises(UserError, match="params.yaml not found"):
        load_params(tmp_path / "params.yaml")

"""params.yaml: every key checked, every problem named, every value read as DVC reads it."""

import copy
import json

import pytest

from pipeline import paths, published
from pipeline.config import load_params, parse_params
from pipeline.errors import UserError
from pipeline.params import read_yaml
from tests.conftest import EXAMPLE_ARGS, Repo, repo_env


@pytest.fixture
def raw() -> dict:
    return read_yaml(paths.PROJECT.params)


def problems(raw: dict) -> list[str]:
    with pytest.raises(UserError) as info:
        parse_params(raw)
    header, *lines = str(info.value).splitlines()
    assert header == f"params.yaml has {len(lines)} problem{'s' if len(lines) > 1 else ''}:"
    return [line.strip() for line in lines]


def test_defaults_are_the_examples_settings():
    params = load_params(paths.PROJECT.params)
    assert params.data.pixel_dtype == "float64"
    assert params.data.source == "idx"
    # MNIST's own split, the 2017 example's: the first 60,000 rows train, unshuffled.
    assert params.split.model_dump() == {
        "train_size": 60000,
        "test_size": None,
        "shuffle": False,
        "random_state": 0,
        "stratify": False,
    }
    assert published.matching(params) is published.EXAMPLE_2017
    kwargs = params.train.estimator_kwargs()
    assert {k: kwargs[k] for k in EXAMPLE_ARGS} == EXAMPLE_ARGS
    assert (params.visualize.rows, params.visualize.cols, params.visualize.range_factor) == (
        4,
        4,
        0.5,
    )


def test_every_default_matches_mlpclassifier_defaults_but_the_examples():
    from sklearn.neural_network import MLPClassifier

    defaults = MLPClassifier().get_params()
    kwargs = load_params(paths.PROJECT.params).train.estimator_kwargs()
    changed = {k for k, v in kwargs.items() if defaults[k] != v}
    assert changed == {
        "hidden_layer_sizes",
        "max_iter",
        "solver",
        "learning_rate_init",
        "random_state",
    }
    assert set(defaults) - set(kwargs) == {"verbose", "warm_start"}


@pytest.mark.parametrize("spelling", ["1e-05", "1.0e-5", "0.00001", "1E-5", ".00001"])
def test_numbers_in_any_yaml_spelling_are_floats(tmp_path, spelling):
    path = tmp_path / "params.yaml"
    path.write_text(paths.PROJECT.params.read_text().replace("alpha: 0.0001", f"alpha: {spelling}"))
    assert load_params(path).train.alpha == 1e-05


def test_a_quoted_number_is_a_string_as_dvc_records_it(raw):
    raw["train"]["max_iter"] = "12"
    assert problems(raw) == [
        "train.max_iter: expected a number, not a string (remove the quotes) (got '12')"
    ]


def test_hand_edit_1e_minus_4_reads_as_float(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-4, with no dot, as a string; DVC and the stages do not.
    path = tmp_path / "params.yaml"
    path.write_text(paths.PROJECT.params.read_text().replace("alpha: 0.0001", "alpha: 1e-4"))
    assert read_yaml(path)["train"]["alpha"] == 1e-4
    assert load_params(path).train.alpha == 1e-4


def test_duplicate_keys_are_refused_not_silently_resolved(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        paths.PROJECT.params.read_text().replace(
            "  max_iter: 10\n", "  max_iter: 10\n  max_iter: 20\n"
        )
    )
    with pytest.raises(UserError, match=r"params.yaml is not valid YAML: .*duplicate key"):
        load_params(path)


# Spellings whose YAML 1.1 reading (PyYAML's) and 1.2 reading (DVC's) differ, and some
# that agree: a stage must use what dvc.lock and `dvc params diff` record, or refuse it.
SPELLINGS = [
    ("max_iter", "012"),  # 1.1: octal 10
    ("max_iter", "0o14"),
    ("max_iter", "0x0C"),
    ("max_iter", "1_2"),
    ("max_iter", "12.0"),
    ("max_iter", "1:00"),  # 1.1: sexagesimal 60
    ("max_iter", "'12'"),
    ("batch_size", "0200"),
    ("shuffle", "yes"),  # 1.1: true
    ("shuffle", "on"),
    ("shuffle", "off"),
    ("shuffle", "False"),
    ("alpha", "2e-4"),  # 1.1: a string
    ("alpha", "2E-4"),
    ("alpha", ".0002"),
    ("alpha", "+2.0e-4"),
    ("alpha", "'2e-4'"),
    ("tol", "1e-3"),
]


@pytest.fixture(scope="module")
def spelling_repo(tmp_path_factory):
    return Repo(tmp_path_factory.mktemp("spellings") / "repo", repo_env())


@pytest.mark.slow
@pytest.mark.parametrize(("key", "spelling"), SPELLINGS)
def test_a_stage_uses_the_value_dvc_records_or_refuses_it(spelling_repo, key, spelling):
    repo = spelling_repo
    repo.set_param(f"train.{key}", spelling)
    try:
        diff = json.loads(repo.dvc("params", "diff", "--json").stdout)
        recorded = diff["params.yaml"][f"train.{key}"]["new"]
        try:
            used = getattr(load_params(repo.root / "params.yaml").train, key)
        except UserError as exc:
            # Refused: one problem, naming the key and the value DVC recorded.
            assert str(exc).splitlines()[1:] == [f"  train.{key}: {exc_detail(exc)}"]
            assert f"(got {recorded!r})" in str(exc)
        else:
            assert used == recorded and isinstance(used, bool) == isinstance(recorded, bool)
    finally:
        repo.git("checkout", "params.yaml")


def exc_detail(exc: UserError) -> str:
    return str(exc).splitlines()[1].split(": ", 1)[1]


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "alpha", "a lot", "train.alpha: expected a number, not a string"),
        ("train", "alpha", -1, "train.alpha: Input should be greater than or equal to 0 (got -1)"),
        (
            "train",
            "learning_rate_init",
            0,
            "train.learning_rate_init: Input should be greater than 0",
        ),
        (
            "train",
            "max_iter",
            0,
            "train.max_iter: Input should be greater than or equal to 1 (got 0)",
        ),
        ("train", "max_iter", 2.5, "train.max_iter: Input should be a valid integer"),
        ("train", "max_iter", True, "train.max_iter: expected a number, not a boolean (got True)"),
        (
            "train",
            "solver",
            "sdg",
            "train.solver: Input should be 'lbfgs', 'sgd' or 'adam' (got 'sdg')",
        ),
        (
            "train",
            "hidden_layer_sizes",
            [],
            "train.hidden_layer_sizes: List should have at least 1 item",
        ),
        (
            "train",
            "hidden_layer_sizes",
            50,
            "train.hidden_layer_sizes: Input should be a valid list (got 50)",
        ),
        (
            "train",
            "hidden_layer_sizes",
            [50, 0],
            "train.hidden_layer_sizes.1: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            "train",
            "batch_size",
            0,
            "train.batch_size: expected a positive integer or 'auto' (got 0)",
        ),
        ("train", "shuffle", "yes", "train.shuffle: Input should be a valid boolean (got 'yes')"),
        ("train", "alpha", float("nan"), "train.alpha: Input should be a finite number"),
        # scikit-learn refuses a negative power_t, mid-stage, after the data was read
        (
            "train",
            "power_t",
            -1,
            "train.power_t: Input should be greater than or equal to 0 (got -1)",
        ),
        (
            "data",
            "pixel_dtype",
            "float16",
            "data.pixel_dtype: Input should be 'float32' or 'float64' (got 'float16')",
        ),
        ("split", "train_size", 0, "split.train_size: a number of rows is at least 1"),
        ("split", "test_size", 1.0, "split.test_size: a fraction is above 0 and below 1"),
        ("split", "test_size", -0.5, "split.test_size: a fraction is above 0 and below 1"),
        ("split", "train_size", True, "split.train_size: expected a number of rows, a fraction"),
        ("split", "train_size", "0.3", "split.train_size: expected a number of rows (an integer)"),
        ("split", "random_state", None, "split.random_state: Input should be a valid integer"),
        ("split", "shuffle", "yes", "split.shuffle: Input should be a valid boolean (got 'yes')"),
        ("data", "source", "web", "data.source: Input should be 'idx' or 'openml' (got 'web')"),
        (
            "visualize",
            "rows",
            0,
            "visualize.rows: Input should be greater than or equal to 1 (got 0)",
        ),
    ],
)
def test_bad_value_is_named_with_key_and_value(raw, section, key, value, expected):
    raw[section][key] = value
    [line] = problems(raw)
    assert line.startswith(expected)


def test_unknown_key_suggests_the_nearest(raw):
    raw["train"]["learning_rate_int"] = 0.2
    assert problems(raw) == [
        "train.learning_rate_int: unknown key; did you mean 'learning_rate_init'?"
    ]


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
        "train.solver",
        "train.alpha",
        "visualize.cols",
        "visualize.colz",
    ]


def test_grid_larger_than_first_layer_is_refused(raw):
    raw["visualize"]["rows"] = 8
    raw["visualize"]["cols"] = 8
    assert problems(raw) == [
        "visualize.rows x visualize.cols = 8 x 8 = 64 cells, but the first hidden layer"
        " (train.hidden_layer_sizes[0]) has only 50 units; make the grid at most 50 cells"
    ]


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        (
            {"shuffle": False, "stratify": True},
            ["split.stratify = true needs split.shuffle = true: scikit-learn has no"],
        ),
        (
            {"train_size": 0.5, "test_size": 0.6, "shuffle": True},
            ["split.train_size + split.test_size = 0.5 + 0.6 is more than all the rows"],
        ),
    ],
)
def test_a_split_that_scikit_learn_refuses_whatever_the_data_is_a_params_problem(
    raw, split, expected
):
    # Each is train_test_split's ValueError, found here before any stage starts; the
    # sizes against the data's are the train stage's to check (tests/test_split.py).
    raw["split"] |= split
    found = problems(raw)
    assert [line[: len(start)] for line, start in zip(found, expected, strict=True)] == expected


def test_a_params_file_from_before_the_split_gets_one_line_saying_what_replaced_it(raw):
    del raw["split"]
    raw["data"]["train_size"] = 60000
    assert problems(raw) == [
        "data.train_size: replaced by split.train_size, in the section split that holds"
        " scikit-learn's train_test_split arguments; with split.shuffle: false and"
        " split.test_size: null, the first N rows train as before (params.yaml in git has"
        " the section: `git show HEAD:params.yaml`)"
    ]


def test_problems_across_sections_are_reported_together(raw):
    raw["split"]["stratify"] = True
    raw["visualize"]["rows"] = 8
    raw["visualize"]["cols"] = 8
    assert [line.split(" ")[0] for line in problems(raw)] == [
        "split.stratify",
        "visualize.rows",
    ]


def test_grids_too_large_to_draw_are_refused_before_any_memory_is_spent(raw):
    # 1000 x 1000 misclassified digits ended in std::bad_alloc.
    raw["visualize"]["misclassified_rows"] = 1000
    raw["visualize"]["misclassified_cols"] = 1000
    assert problems(raw) == [
        "visualize.misclassified_rows: Input should be less than or equal to 40 (got 1000)",
        "visualize.misclassified_cols: Input should be less than or equal to 40 (got 1000)",
    ]


def test_params_are_frozen():
    params = load_params(paths.PROJECT.params)
    with pytest.raises(Exception, match="frozen"):
        params.train.alpha = 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train: [unclosed", "is not valid YAML"),
        ("", "expected sections data, split, train, epochs and visualize, got None"),
        ("- a list", "expected sections data, split, train, epochs and visualize"),
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


def test_a_binary_params_file_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"train:\n  \x89PNG\r\n\x1a\n")
    with pytest.raises(UserError) as info:
        load_params(path)
    assert str(info.value) == (
        f"{path} is not UTF-8 text (byte 9 is 0x89): params.yaml must be a YAML text file"
    )


@pytest.mark.parametrize(
    "text",
    [
        "train: " + "[" * 600 + "]" * 600,
        "".join(" " * depth + "train:\n" for depth in range(600)),
    ],
    ids=["flow", "block"],
)
def test_a_params_file_nested_too_deeply_is_one_line(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_params(path)
    assert str(info.value) == (
        f"{path} is nested too deeply for a YAML parser to read: params.yaml holds sections"
        " of plain values"
    )


def test_a_params_path_that_is_a_folder_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.mkdir()
    with pytest.raises(UserError, match=rf"^{path}: cannot read it \(Is a directory\)$"):
        load_params(path)


def test_a_long_or_deeply_nested_value_is_cut_short_in_its_line(raw):
    raw["train"]["solver"] = "s" * 10_000
    raw["train"]["max_iter"] = [[[[[[12]]]]]]
    solver, max_iter = problems(raw)
    assert solver.endswith(f"(got '{'s' * 27}...{'s' * 28}')")
    assert max_iter == "train.max_iter: Input should be a valid integer (got [[[[...]]]])"


def test_fetch_and_scale_checks_the_data_section_alone(tmp_path, raw):
    # It reads nothing else, and depends on nothing else (dvc.yaml): train and visualize,
    # which read all of params.yaml, check all of it.
    from pipeline.params import load_data

    path = tmp_path / "params.yaml"
    raw["train"]["learning_rate_int"] = 0.2  # a typo elsewhere: not this stage's
    raw["data"]["pixel_dtyp"] = "float32"
    path.write_text(json.dumps(raw))
    with pytest.raises(UserError) as refused:
        load_data(path)
    assert str(refused.value).splitlines() == [
        "params.yaml has 1 problem:",
        "  data.pixel_dtyp: unknown key; did you mean 'pixel_dtype'?",
    ]
    del raw["data"]["pixel_dtyp"]
    path.write_text(json.dumps(raw))
    assert load_data(path).pixel_dtype == "float64"
    with pytest.raises(UserError, match="learning_rate_int: unknown key"):
        load_params(path)

"""The two published versions of the example: one record each, and params.yaml can be either."""

import subprocess
import sys

import pytest

from pipeline import paths, published
from pipeline.config import load_params
from pipeline.dvc_api import apply_overrides
from pipeline.errors import EXIT_USAGE
from pipeline.model import TrainParams
from pipeline.published import EXAMPLE_2017, GALLERY_2021
from pipeline.split import SplitParams


def params_as(tmp_path, *overrides: str):
    """params.yaml with ``overrides`` applied by DVC's own ``-S`` code."""
    path = tmp_path / "params.yaml"
    path.write_bytes(paths.PROJECT.params.read_bytes())
    if overrides:
        apply_overrides(path, list(overrides))
    return load_params(path)


def test_the_default_params_are_the_2017_example_and_not_the_gallerys(tmp_path):
    params = params_as(tmp_path)
    assert published.matching(params) is EXAMPLE_2017
    assert published.differences(params, EXAMPLE_2017) == []
    assert published.differences(params, GALLERY_2021) == [
        "split.train_size / test_size: 60000 / 10000 rows (gallery: 21000 / 49000 rows)",
        "split.shuffle: False (gallery: True)",
        "split.random_state: unused unshuffled (gallery: 0)",
        "train.hidden_layer_sizes: (50,) (gallery: (40,))",
        "train.learning_rate_init: 0.1 (gallery: 0.2)",
        "train.max_iter: 10 (gallery: 8)",
    ]


def test_the_gallerys_overrides_make_the_default_the_gallerys_version(tmp_path):
    overrides = published.overrides(GALLERY_2021)
    assert overrides == [
        "split.train_size=null",
        "split.test_size=0.7",
        "split.shuffle=true",
        "split.random_state=0",
        "train.hidden_layer_sizes=[40]",
        "train.learning_rate_init=0.2",
        "train.max_iter=8",
    ]
    assert published.matching(params_as(tmp_path, *overrides)) is GALLERY_2021


@pytest.mark.parametrize(
    ("start", "overrides", "version"),
    [
        # The same rows: sizes are compared as the rows they give of the 70,000.
        (EXAMPLE_2017, ["split.test_size=10000"], EXAMPLE_2017),
        (GALLERY_2021, ["split.train_size=0.3", "split.test_size=null"], GALLERY_2021),
        # An unshuffled split ignores its seed, as train_test_split does.
        (EXAMPLE_2017, ["split.random_state=42"], EXAMPLE_2017),
        # Other rows, or another model: no published numbers.
        (GALLERY_2021, ["split.random_state=1"], None),
        (GALLERY_2021, ["split.stratify=true"], None),
        (EXAMPLE_2017, ["split.train_size=21000"], None),
        (EXAMPLE_2017, ["data.pixel_dtype=float32"], None),
        (EXAMPLE_2017, ["train.alpha=0.001"], None),
    ],
)
def test_which_version_params_describe(tmp_path, start, overrides, version):
    found = params_as(tmp_path, *published.overrides(start), *overrides)
    assert published.matching(found) is version


def test_each_version_sets_only_arguments_that_params_yaml_has():
    for version in published.VERSIONS:
        assert set(version.estimator_args) <= set(TrainParams.model_fields), version.key
        assert set(version.split) <= set(SplitParams.model_fields), version.key
        assert len(version.losses) == version.estimator_args["max_iter"], version.key


def test_the_command_line_prints_the_overrides_for_make_gallery():
    run = [sys.executable, "-m", "pipeline.published", "overrides"]
    done = subprocess.run([*run, "gallery"], capture_output=True, text=True, cwd=paths.ROOT)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == " ".join(f"-S {o}" for o in published.overrides(GALLERY_2021)) + "\n"
    wrong = subprocess.run([*run, "galery"], capture_output=True, text=True, cwd=paths.ROOT)
    assert (wrong.returncode, wrong.stdout) == (EXIT_USAGE, "")  # nothing for make to run
    assert wrong.stderr == "usage: python -m pipeline.published overrides {example,gallery}\n"


def test_importing_the_records_loads_nothing_of_the_pipeline():
    # benchmarks/example.py imports them; its time must stay the example's own.
    code = (
        "import sys, pipeline.published;"
        " print(sorted(m for m in sys.modules"
        " if m.startswith(('pipeline', 'sklearn', 'pydantic'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=paths.ROOT
    )
    assert done.stdout.strip() == "['pipeline', 'pipeline.published']"

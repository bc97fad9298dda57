"""The sweep's parts that need no cluster: the grid, the messages, the table, the formats."""

import os
import sys
from pathlib import Path

import pytest

from stages.errors import UserError
from sweep import show
from sweep.__main__ import parse_env, parser
from sweep.driver import HEADLINE_METRICS, METRICS_FILE, nanny_variables, points_env, table
from sweep.grid import Override, Point, expand
from sweep.jobs import PointJob, PointResult
from sweep.point import exp_ref, failure_message, point_env, ran_stages


def test_several_flags_give_the_cross_product_first_flag_slowest():
    points = expand(["train.learning_rate_init=0.05,0.1,0.2", "train.alpha=1e-5,1e-4"])
    assert [p.flags for p in points] == [
        ("train.learning_rate_init=0.05", "train.alpha=1e-05"),
        ("train.learning_rate_init=0.05", "train.alpha=0.0001"),
        ("train.learning_rate_init=0.1", "train.alpha=1e-05"),
        ("train.learning_rate_init=0.1", "train.alpha=0.0001"),
        ("train.learning_rate_init=0.2", "train.alpha=1e-05"),
        ("train.learning_rate_init=0.2", "train.alpha=0.0001"),
    ]
    assert [o.key for o in points[0].overrides] == ["train.learning_rate_init", "train.alpha"]


@pytest.mark.parametrize(
    "flag, values",
    [
        ("train.hidden_layer_sizes=[50,50]", ["train.hidden_layer_sizes=[50,50]"]),  # one list
        ("train.activation='relu,tanh'", ["train.activation='relu,tanh'"]),  # one quoted string
        ("train.activation=relu,tanh", ["train.activation=relu", "train.activation=tanh"]),
        ("train.max_iter=range(3,6)", [f"train.max_iter={i}" for i in (3, 4, 5)]),
    ],
)
def test_values_are_parsed_as_dvc_parses_them(flag, values):
    assert [p.flags for p in expand([flag])] == [(v,) for v in values]


def test_another_params_file_keeps_its_prefix():
    [point] = expand(["other.yaml:model.depth=3"])
    assert point.overrides == (Override("other.yaml", "model.depth", "model.depth=3"),)
    assert point.flags == ("other.yaml:model.depth=3",)
    assert point.overrides[0].label == "other.yaml:model.depth"


@pytest.mark.parametrize(
    "flags, match",
    [
        ([], "no -S given"),
        (["train.alpha"], r"-S 'train.alpha': .*missing EQUAL.*expected \[FILE:\]KEY=VALUE"),
        (["train.alpha=[1,"], r"-S 'train.alpha=\[1,': no viable alternative"),
    ],
)
def test_a_malformed_flag_is_one_message(flags, match):
    with pytest.raises(UserError, match=match) as raised:
        expand(flags)
    assert "\n" not in str(raised.value)


def test_the_command_line():
    args = parser().parse_args(
        ["-S", "a=1,2", "-S", "b=3", "--scheduler", "tcp://h:8786", "--name", "lr"]
    )
    assert (args.flags, args.scheduler, args.name) == (["a=1,2", "b=3"], "tcp://h:8786", "lr")
    with pytest.raises(SystemExit):
        parser().parse_args(["-S", "a=1", "--workers", "2", "--scheduler", "tcp://h:8786"])


def test_env_forwards_named_variables(monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", "/data/mnist")
    assert parse_env(["MNIST_MIRROR", "MNIST_CACHE=/tmp/c"]) == {
        "MNIST_MIRROR": "/data/mnist",
        "MNIST_CACHE": "/tmp/c",
    }
    monkeypatch.delenv("MNIST_MIRROR")
    with pytest.raises(UserError, match="--env MNIST_MIRROR: not set here"):
        parse_env(["MNIST_MIRROR"])


STAGE_FAILED = """\
Running stage 'train':
> python -m stages.train
error: params.yaml has 1 problem:
  train.momentum: Input should be less than or equal to 1 (got 1.5)
ERROR: failed to reproduce 'train': failed to run: python -m stages.train, exited with 1
"""


def test_the_failure_is_the_stages_own_message_on_one_line():
    assert failure_message(STAGE_FAILED) == (
        "params.yaml has 1 problem:"
        " train.momentum: Input should be less than or equal to 1 (got 1.5)"
    )
    assert (
        failure_message("Reproducing...\nERROR: unexpected error - disk full\n")
        == "unexpected error - disk full"
    )
    assert failure_message("") == "(no output)"
    assert ran_stages(STAGE_FAILED) == ("train",)


def test_jobs_and_results_survive_json():
    job = PointJob(
        sweep_id="abc",
        name="lr-1",
        flags=("train.alpha=1e-05",),
        git_url="/repo",
        base="f" * 40,
        work_dir=None,
        cache_dir="/cache",
        identity=("A", "a@b.c"),
        env={"MNIST_MIRROR": "/m", "OMP_NUM_THREADS": None},
    )
    assert PointJob.from_json(job.to_json()) == job
    result = PointResult("lr-1", "done", ran=("train", "visualize"), host="h")
    assert PointResult.from_json(result.to_json()) == result


def test_experiment_refs_are_named_as_dvc_names_them():
    from dvc.repo.experiments.refs import ExpRefInfo

    base = "0123456789abcdef0123456789abcdef01234567"
    assert exp_ref(base, "lr-1") == str(ExpRefInfo(base, "lr-1"))


def test_the_table_shows_the_swept_params_and_the_headline_metrics():
    points = {
        name: point
        for name, point in zip(
            ["lr-1", "lr-2"], expand(["train.learning_rate_init=0.05,0.1"]), strict=True
        )
    }
    shown = {
        name: {
            "params": {
                "params.yaml": {"data": {"train": {"learning_rate_init": rate, "alpha": 1e-4}}}
            },
            "metrics": {
                METRICS_FILE: {
                    "data": {
                        "train_accuracy": 0.9868,
                        "test_accuracy": 0.97,
                        "final_loss": 0.04645355,
                        "iterations": 10,
                        "test_per_class": {},
                    }
                }
            },
        }
        for name, rate in (("lr-1", 0.05), ("lr-2", 0.1))
    }
    lines = table(points, shown).splitlines()
    assert lines[0].split() == ["experiment", "train.learning_rate_init", *HEADLINE_METRICS]
    assert lines[1].split() == ["lr-1", "0.05", "0.9868", "0.97", "0.0464536", "10"]
    assert lines[2].split() == ["lr-2", "0.1", "0.9868", "0.97", "0.0464536", "10"]


def test_a_point_prints_as_its_flags():
    assert (
        str(Point((Override("params.yaml", "a", "a=1"), Override("o.yaml", "b", "b=2"))))
        == "a=1 o.yaml:b=2"
    )


def test_points_run_with_the_clients_thread_settings_not_the_nannys(monkeypatch):
    # Dask's nanny sets one BLAS thread per worker and a hash seed: a point runs as
    # `dvc exp run` would in the client's shell instead.
    assert {
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "PYTHONHASHSEED",
    } <= nanny_variables()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as in a worker process
    monkeypatch.setenv("PYTHONHASHSEED", "6640")
    job = PointJob(
        sweep_id="s",
        name="n-1",
        flags=(),
        git_url="/repo",
        base="f" * 40,
        env={"OMP_NUM_THREADS": None, "PYTHONHASHSEED": "0", "MNIST_MIRROR": "/m"},
    )
    env = point_env(job)
    assert "OMP_NUM_THREADS" not in env
    assert (env["PYTHONHASHSEED"], env["MNIST_MIRROR"]) == ("0", "/m")
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_the_points_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    env = points_env({"MNIST_MIRROR": "/m"})
    assert env["OMP_NUM_THREADS"] is None and env["MKL_NUM_THREADS"] == "3"
    assert env["MNIST_MIRROR"] == "/m"


def shown_entry(name: str | None, rev: str, params: dict, metrics: dict, nested: bool) -> dict:
    data = {
        "params": {"params.yaml": {"data": params}},
        "metrics": {"outputs/metrics.json": {"data": metrics}},
    }
    if nested:  # an experiment: its data under revs
        return {"name": name, "revs": [{"rev": rev, "data": data}]}
    return {"rev": rev, "name": name, "data": data}


def test_show_puts_the_params_that_differ_first_and_nothing_else():
    metrics = {
        "train_accuracy": 0.9868,
        "test_accuracy": 0.97,
        "final_loss": 0.0464535,
        "iterations": 10,
    }
    common = {"hidden_layer_sizes": [50], "max_iter": 10}
    baseline = shown_entry("main", "a" * 40, {"train": common | {"alpha": 1e-4}}, metrics, False)
    baseline["experiments"] = [
        shown_entry(
            "lr-a", "b" * 40, {"train": common | {"alpha": 1e-5}}, metrics | {"iterations": 9}, True
        ),
    ]
    workspace = shown_entry(None, "workspace", {"train": common | {"alpha": 1e-4}}, metrics, False)
    found = show.rows([workspace, baseline])
    assert [name for name, _, _ in found] == ["workspace", "main", "lr-a"]
    assert show.table(found).splitlines() == [
        "experiment  train.alpha  train_accuracy  test_accuracy  final_loss  iterations",
        "workspace   0.0001       0.9868          0.97           0.0464535   10",
        "main        0.0001       0.9868          0.97           0.0464535   10",
        "lr-a        1e-05        0.9868          0.97           0.0464535   9",
    ]

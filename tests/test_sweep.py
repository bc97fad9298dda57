"""The sweep's parts that need no cluster: the grid, the messages, the table, the formats,
the secrets."""

import os
import pickle
import sys
from pathlib import Path

import pytest

from pipeline.dvc_api import ran_stages, rows
from pipeline.errors import UserError
from pipeline.secrets import Secret, hide, redact
from sweep import show, worker
from sweep.__main__ import parse_env, parser
from sweep.client import (
    HEADLINE_METRICS,
    METRICS_FILE,
    Override,
    Point,
    absolute_url,
    check_points,
    expand,
    experiment_names,
    nanny_variables,
    points_env,
    secret_env,
    sweep_table,
)
from sweep.shared import PointJob, PointResult
from sweep.worker import failure_message, point_env
from tests.project import ROOT

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


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


def at_base(path: str) -> bytes | None:
    """The project's own files, standing in for the sweep commit's."""
    return (ROOT / path).read_bytes() if (ROOT / path).is_file() else None


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["train.learning_rate_int=0.1"],
            "train.learning_rate_int=0.1: params.yaml has 1 problem: train.learning_rate_int:"
            " unknown key; did you mean 'learning_rate_init'?; nothing ran",
        ),
        (
            ["train.max_iter=3,4", "train.momentum=0.9,1.5"],
            "train.max_iter=3 train.momentum=1.5: params.yaml has 1 problem: train.momentum:"
            " Input should be less than or equal to 1 (got 1.5) (2 points); nothing ran",
        ),
        (
            ["missing.yaml:train.max_iter=3"],
            "-S 'missing.yaml:train.max_iter=3': missing.yaml is not in the commit the sweep"
            " runs at",
        ),
        (
            ["dvc.yaml:stages.nosuch=x"],
            "dvc.yaml:stages.nosuch=x: dvc.yaml: Could not override 'stages.nosuch'. To append"
            " to your config use +stages.nosuch=x; nothing ran",
        ),
    ],
)
def test_every_point_is_checked_against_the_params_before_anything_runs(flags, message):
    with pytest.raises(UserError) as raised:
        check_points(expand(flags), at_base)
    assert str(raised.value) == message


def test_a_grid_with_several_problems_names_each_once():
    with pytest.raises(UserError) as raised:
        check_points(expand(["train.alpha=-1,1e-5", "visualize.rows=4,50"]), at_base)
    assert str(raised.value).splitlines() == [
        "3 of 4 points would fail; nothing ran:",
        "  train.alpha=-1 visualize.rows=4: params.yaml has 1 problem: train.alpha: Input should"
        " be greater than or equal to 0 (got -1)",
        "  train.alpha=-1 visualize.rows=50: params.yaml has 2 problems: train.alpha: Input"
        " should be greater than or equal to 0 (got -1) visualize.rows: Input should be less"
        " than or equal to 40 (got 50)",
        "  train.alpha=1e-05 visualize.rows=50: params.yaml has 1 problem: visualize.rows: Input"
        " should be less than or equal to 40 (got 50)",
    ]
    check_points(
        expand(["train.alpha=1e-5,1e-4", "split.train_size=50", "split.test_size=0.25"]), at_base
    )


@pytest.mark.parametrize(
    "flag, match",
    [
        ("=1", r"-S '=1': no KEY before '='"),
        ("train.max_iter=${oc.env:AWS_SECRET_ACCESS_KEY}", r"\$\{\.\.\.\} interpolation is not"),
        ("train.max_iter='${x}'", r"interpolation is not allowed"),
        ("../other.yaml:a=1", r"\.\./other\.yaml must be a file of the project"),
        ("/etc/other.yaml:a=1", r"/etc/other\.yaml must be a file of the project"),
    ],
)
def test_flags_that_dvc_would_misread_are_refused(flag, match):
    with pytest.raises(UserError, match=match) as raised:
        expand([flag])
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("prefix", ["a/b", "-a", "a..b", "a b", "a@{1}"])
def test_a_name_that_dvc_cannot_use_is_refused(prefix, tmp_path):
    with pytest.raises(UserError, match="not usable as an experiment's name"):
        experiment_names(prefix, 2, tmp_path)
    assert experiment_names("lr_0.1-a", 2, tmp_path) == ["lr_0.1-a-1", "lr_0.1-a-2"]


def test_the_command_line():
    args = parser().parse_args(
        ["-S", "a=1,2", "-S", "b=3", "--scheduler", "tcp://h:8786", "--name", "lr"]
    )
    assert (args.flags, args.scheduler, args.name) == (["a=1,2", "b=3"], "tcp://h:8786", "lr")
    with pytest.raises(SystemExit):
        parser().parse_args(["-S", "a=1", "--workers", "2", "--scheduler", "tcp://h:8786"])


def test_env_forwards_named_variables_as_secrets():
    env = parse_env(["MNIST_MIRROR", "MNIST_CACHE=/tmp/c"], {"MNIST_MIRROR": "/data/mnist"})
    assert {name: value.reveal() for name, value in env.items()} == {
        "MNIST_MIRROR": "/data/mnist",
        "MNIST_CACHE": "/tmp/c",
    }
    assert repr(env) == "{'MNIST_MIRROR': Secret('***'), 'MNIST_CACHE': Secret('***')}"
    with pytest.raises(UserError, match="--env MNIST_MIRROR: not set here"):
        parse_env(["MNIST_MIRROR"], {})


@pytest.mark.parametrize(
    "item, shown",
    [("=" + SECRET, "--env =...:"), ("A B=" + SECRET, "--env 'A B'=...:"), ("1X", "--env '1X':")],
)
def test_env_without_a_variable_name_is_refused_without_its_value(item, shown):
    with pytest.raises(UserError) as raised:
        parse_env([item], {})
    message = str(raised.value)
    assert message.startswith(shown) and "expected NAME or NAME=VALUE" in message
    assert SECRET not in message and "\n" not in message


def test_a_secret_prints_as_stars_wherever_it_goes():
    secret = Secret(SECRET)
    url = Secret.url(f"https://sweeper:{SECRET}@git.example.com/x.git")
    job = PointJob(
        sweep_id="s",
        name="n-1",
        flags=("train.alpha=1e-05",),
        git_url=url,
        base="f" * 40,
        env={"OMP_NUM_THREADS": None},
        secret_env={"AWS_SECRET_ACCESS_KEY": secret},
    )
    # Dask describes a failed task by repr(task) (its "Compute Failed" log), and a
    # message by str: neither holds the value.
    for text in (str(secret), repr(secret), f"{secret}", repr(job), str(job), repr(url)):
        assert SECRET not in text
    assert str(url) == "https://***@git.example.com/x.git"
    assert "Secret('***')" in repr(job)
    # The task carries it whole to the point, which alone reveals it.
    assert pickle.loads(pickle.dumps(job)) == job
    assert pickle.loads(pickle.dumps(job)).secret_env["AWS_SECRET_ACCESS_KEY"].reveal() == SECRET


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://user:pw@host/x.git", "https://***@host/x.git"),
        ("https://TOKEN@host:8443/x.git", "https://***@host:8443/x.git"),
        (
            "https://host/x?X-Amz-Signature=abc123&X-Amz-Date=2026&flag",
            "https://host/x?X-Amz-Signature=***&X-Amz-Date=***&***",
        ),
        ("git@github.com:you/x.git", "git@github.com:you/x.git"),
        ("/srv/git/x.git", "/srv/git/x.git"),
    ],
)
def test_urls_are_shown_without_their_user_part_and_query_values(url, shown):
    assert redact(url) == shown
    assert str(Secret.url(url)) == shown


def test_what_a_command_printed_is_shown_with_the_secrets_hidden():
    url = Secret.url(f"http://sweeper:{SECRET}@127.0.0.1:9/x.git")
    git_said = (
        f"error: Cannot access URL http://sweeper:{SECRET}@127.0.0.1:9/x.git/, return code 22"
    )
    assert hide(git_said, [url]) == (
        "error: Cannot access URL http://***@127.0.0.1:9/x.git/, return code 22"
    )
    assert hide(f"key {SECRET} refused", [Secret(SECRET)]) == "key *** refused"
    # A bare user name is not hidden in every word that holds it; a short value neither.
    ssh = Secret.url("ssh://git@host/x.git")
    assert hide("`git push` to ssh://git@host/x.git failed", [ssh]) == (
        "`git push` to ssh://***@host/x.git failed"
    )
    assert hide("exit code 1 of 8", [Secret("8"), Secret("1")]) == "exit code 1 of 8"


STAGE_FAILED = """\
Running stage 'train':
> python -m stages train
error: params.yaml has 1 problem:
  train.momentum: Input should be less than or equal to 1 (got 1.5)
ERROR: failed to reproduce 'train': failed to run: python -m stages train, exited with 1
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


def test_the_failure_leaves_out_the_stages_hint_to_dvc_checkout():
    """The point's clone is gone: `dvc checkout` there would bring nothing back."""
    one_line = (
        "error: the disk is full; DVC removed the stage's previous outputs when it started"
        " it: `dvc checkout train` brings them back\n"
    )
    assert failure_message(one_line) == "the disk is full"
    hint_below = STAGE_FAILED.replace(
        "ERROR:", "DVC removed the stage's previous outputs when it started it: ...\nERROR:"
    )
    assert failure_message(hint_below) == failure_message(STAGE_FAILED)


def test_jobs_and_results_survive_json():
    job = PointJob(
        sweep_id="abc",
        name="lr-1",
        flags=("train.alpha=1e-05",),
        git_url=Secret.url(f"https://u:{SECRET}@h/x.git"),
        base="f" * 40,
        work_dir=None,
        cache_dir="/cache",
        identity=("A", "a@b.c"),
        env={"MNIST_MIRROR": "/m", "OMP_NUM_THREADS": None},
        secret_env={"AWS_SECRET_ACCESS_KEY": Secret(SECRET)},
    )
    assert PointJob.from_json(job.to_json()) == job
    # The JSON goes to the point's own process through a pipe: it holds the values.
    assert SECRET in job.to_json()
    result = PointResult("lr-1", "done", ran=("train", "visualize"), host="h")
    assert PointResult.from_json(result.to_json()) == result


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
    lines = sweep_table(points, shown).splitlines()
    assert lines[0].split() == ["experiment", "train.learning_rate_init", *HEADLINE_METRICS]
    assert lines[1].split() == ["lr-1", "0.05", "0.9868", "0.97", "0.0464536", "10"]
    assert lines[2].split() == ["lr-2", "0.1", "0.9868", "0.97", "0.0464536", "10"]


def test_a_point_prints_as_its_flags():
    assert (
        str(Point((Override("params.yaml", "a", "a=1"), Override("o.yaml", "b", "b=2"))))
        == "a=1 o.yaml:b=2"
    )


def test_points_run_with_the_clients_thread_settings_not_the_nannys():
    # Dask's nanny sets one BLAS thread per worker and a hash seed: a point runs as
    # `dvc exp run` would in the client's shell instead.
    assert {
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "PYTHONHASHSEED",
    } <= nanny_variables()
    in_the_worker = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "6640", "PATH": "/usr/bin"}
    job = PointJob(
        sweep_id="s",
        name="n-1",
        flags=(),
        git_url=Secret.url("/repo"),
        base="f" * 40,
        env={"OMP_NUM_THREADS": None, "PYTHONHASHSEED": "0", "MNIST_MIRROR": "/m"},
        secret_env={"AWS_SECRET_ACCESS_KEY": Secret(SECRET)},
    )
    env = point_env(job, in_the_worker)
    assert "OMP_NUM_THREADS" not in env
    assert (env["PYTHONHASHSEED"], env["MNIST_MIRROR"]) == ("0", "/m")
    assert env["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert env["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/usr/bin"]


def test_the_points_environment(tmp_path):
    shell = {"MKL_NUM_THREADS": "3", "MNIST_MIRROR": "/m"}
    env = points_env(shell, local=True, cwd=tmp_path)
    assert env["OMP_NUM_THREADS"] is None and env["MKL_NUM_THREADS"] == "3"
    assert "MNIST_MIRROR" not in env  # absolute: local workers inherit it as it is


def test_relative_paths_reach_the_points_absolute(tmp_path, caplog):
    # The Quickstart's MNIST_MIRROR=../shared/mnist, relative to where the sweep runs: a
    # point runs in a clone elsewhere, where it named no folder.
    cwd = tmp_path / "project"
    shell = {
        "MNIST_MIRROR": "../shared/mnist",
        "MNIST_CACHE": "~/cache",
        "MNIST_PUBLIC_MIRRORS": "off",
    }
    caplog.set_level("INFO", logger="sweep")
    env = points_env(shell, local=True, cwd=cwd)
    assert env["MNIST_MIRROR"] == str(tmp_path / "shared" / "mnist")
    assert "MNIST_CACHE" not in env and "MNIST_PUBLIC_MIRRORS" not in env
    assert caplog.messages == [
        f"MNIST_MIRROR: relative path made absolute for the points, from {cwd} (where the sweep"
        " runs)"
    ]
    assert "MNIST_MIRROR" not in points_env(
        shell, local=False, cwd=cwd
    )  # remote workers: their own

    caplog.clear()
    secrets = secret_env({"MNIST_MIRROR": Secret("mirror"), "TOKEN": Secret(SECRET)}, cwd)
    assert secrets["MNIST_MIRROR"].reveal() == str(cwd / "mirror")
    assert secrets["TOKEN"].reveal() == SECRET
    assert "mirror" not in caplog.text.replace("MNIST_MIRROR", "")  # a secret's value: unsaid

    assert absolute_url("../origin.git", cwd) == str(tmp_path / "origin.git")
    for url in ("https://h/x.git", "git@h:x.git", "/srv/x.git"):
        assert absolute_url(url, cwd) == url


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
    found = rows([workspace, baseline])
    assert [name for name, _ in found] == ["workspace", "main", "lr-a"]
    assert show.table(found).splitlines() == [
        "experiment  train.alpha  train_accuracy  test_accuracy  final_loss  iterations",
        "workspace   0.0001       0.9868          0.97           0.0464535   10",
        "main        0.0001       0.9868          0.97           0.0464535   10",
        "lr-a        1e-05        0.9868          0.97           0.0464535   9",
    ]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("train:\n  shuffle: yes\n", "train:\n  shuffle: true\n", False),  # 1.1: both true
        ("train:\n  max_iter: 012\n", "train:\n  max_iter: 10\n", False),  # 1.1: octal 10
        ("train:\n  shuffle: true\n", "train:\n  shuffle: 1\n", False),  # Python: True == 1
        ("train:\n  max_iter: 10\n", "train:\n  max_iter: 10.0\n", False),
        ("train:\n  alpha: 1e-4\n", "train:\n  alpha: 0.0001  # the same\n", True),
        ("a: 1\nb: 2\n", "b: 2\na: 1\n", True),
    ],
)
def test_an_experiments_params_are_compared_as_dvc_reads_them(a, b, same):
    # PyYAML called `yes` and `true`, or `012` and `10`, equal where DVC sees different
    # values: the sweep would take an experiment with other params for this point.
    assert worker.same_values(a, b, "params.yaml") is same

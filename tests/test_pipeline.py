"""End to end: `dvc repro` in a temporary git repository, on tiny data and on the real data."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml

from pipeline import formats, paths, published
from pipeline.paths import Layout
from pipeline.published import EXAMPLE_2017, GALLERY_2021
from tests.conftest import (
    FILES,
    N_TEST,
    N_TRAIN,
    Repo,
    idx,
    real_mirror,
    repo_env,
    tiny_env,
    use_tiny_data,
    write_mirror,
)
from tests.machines import PINNABLE, assert_every_machine_reproduces_the_lock, md5

pytestmark = pytest.mark.slow

TRAIN_OUTPUTS = (
    "outputs/model.joblib",
    "outputs/weights.npz",
    "outputs/loss.csv",
    "outputs/metrics.json",
    "outputs/predictions.csv",
)


def test_repro_reruns_exactly_what_a_change_touches(tiny_repo):
    repo = tiny_repo
    first = repo.dvc("repro")
    assert repo.ran_stages(first) == ["fetch_and_scale", "train", "visualize"]
    assert len(re.findall(r"Iteration \d+, loss = \d\.\d{8}", first.stdout)) == 10
    for name in TRAIN_OUTPUTS + (
        "data/images.npy",
        "data/labels.npy",
        "outputs/weights.png",
        "outputs/loss.png",
        "outputs/misclassified.png",
    ):
        assert (repo.root / name).is_file(), name
    repo.git("add", "-A")
    repo.git("commit", "-qm", "first run")

    assert repo.ran_stages(repo.dvc("repro")) == []
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout
    # dvc metrics show: the four headline metrics and the four counts of units, not the
    # per-epoch summary in outputs/epochs/, which is a plot's file
    shown = json.loads(repo.dvc("metrics", "show", "--json").stdout)
    files = shown[""]["data"] if "" in shown else next(iter(shown.values()))["data"]
    assert sorted(files) == ["outputs/metrics.json", "outputs/units.json"]
    assert sum(len(f["data"]) for f in files.values()) == 8

    repo.set_param("rows", "2")
    assert repo.ran_stages(repo.dvc("repro")) == ["visualize"]

    repo.set_param("max_iter", "5")
    assert repo.ran_stages(repo.dvc("repro")) == ["train", "visualize"]
    diff = repo.dvc("params", "diff").stdout
    assert re.search(r"params\.yaml\s+train\.max_iter\s+10\s+5", diff), diff
    assert re.search(r"params\.yaml\s+visualize\.rows\s+4\s+2", diff), diff
    metrics = repo.dvc("metrics", "diff", "--json").stdout
    assert json.loads(metrics)["outputs/metrics.json"]["iterations"] == {
        "old": 10,
        "new": 5,
        "diff": -5,
    }

    # train_size is train's alone: the arrays are not written again.
    repo.set_param("train_size", "50")
    assert repo.ran_stages(repo.dvc("repro")) == ["train", "visualize"]

    repo.set_param("pixel_dtype", "float32")
    assert repo.ran_stages(repo.dvc("repro")) == ["fetch_and_scale", "train", "visualize"]


def test_switching_the_data_set_shows_in_dvc_status_and_reruns_fetch(tiny_repo, tmp_path):
    repo = tiny_repo
    repo.dvc("repro")
    first_images = (repo.root / "data/images.npy").read_bytes()
    repo.git("add", "-A")
    repo.git("commit", "-qm", "first run")

    # Another data set in MNIST's layout: the same tiny shapes, other digits.
    rng = np.random.default_rng(1)
    other = {
        name: idx(array)
        for name, array in zip(
            FILES,
            (
                rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
                (np.arange(N_TRAIN) % 10).astype(np.uint8),
                rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
                (np.arange(N_TEST) % 10).astype(np.uint8),
            ),
            strict=True,
        )
    }
    sums = write_mirror(tmp_path / "other", other)
    repo.env = repo.env | {"MNIST_MIRROR": str(tmp_path / "other")}
    shutil.copyfile(sums, repo.root / "data" / "mnist.sha256")

    status = repo.dvc("status").stdout
    assert re.search(r"fetch_and_scale:\s+changed deps:\s+modified:\s+data/mnist.sha256", status), (
        status
    )
    assert repo.ran_stages(repo.dvc("repro")) == ["fetch_and_scale", "train", "visualize"]
    other_images = (repo.root / "data/images.npy").read_bytes()
    assert other_images != first_images

    # Back to the first data set: DVC's run cache gives back the first arrays, not the
    # other's (the data set's identity is in its key), and trains on nothing new.
    repo.git("checkout", "data/mnist.sha256")
    repo.dvc("repro")
    assert (repo.root / "data/images.npy").read_bytes() == first_images
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout


def test_a_clean_rerun_reproduces_dvc_lock_byte_for_byte(tiny_repo):
    tiny_repo.dvc("repro")
    lock = (tiny_repo.root / "dvc.lock").read_bytes()
    tiny_repo.dvc("repro", "--force")
    assert (tiny_repo.root / "dvc.lock").read_bytes() == lock


def test_metrics_and_plots_commands_work_as_declared(tiny_repo):
    tiny_repo.dvc("repro")
    shown = json.loads(tiny_repo.dvc("metrics", "show", "--json").stdout)
    [metrics] = [rev["data"]["outputs/metrics.json"]["data"] for rev in shown.values()]
    # The headline only: per-class scores are a plot, not forty more metric columns.
    assert set(metrics) == {"train_accuracy", "test_accuracy", "final_loss", "iterations"}

    tiny_repo.dvc("plots", "show", "--out", "report")
    report = tiny_repo.root / "report"
    html = (report / "index.html").read_text()
    assert '"text": "Training loss"' in html
    assert '"field": "iteration"' in html and '"field": "loss"' in html
    first_loss = (tiny_repo.root / "outputs/loss.csv").read_text().splitlines()[1].split(",")[1]
    assert first_loss in html
    assert '"field": "actual"' in html and '"field": "predicted"' in html  # the confusion matrix
    assert '"text": "F1 score of each digit (test set)"' in html and "datum['f1']" in html
    for name in ("weights", "loss", "misclassified"):
        image = report / "static" / f"workspace_outputs_{name}.png"
        assert image.read_bytes() == (tiny_repo.root / f"outputs/{name}.png").read_bytes()
        assert f"static/workspace_outputs_{name}.png" in html


def test_typo_in_params_fails_with_one_message_and_checkout_restores(tiny_repo):
    repo = tiny_repo
    repo.dvc("repro")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "first run")
    repo.set_param("learning_rate_init", "0.1\n  learning_rate_int: 0.2")

    failed = repo.dvc("repro", check=False)
    assert failed.returncode != 0
    assert (
        "train.learning_rate_int: unknown key; did you mean 'learning_rate_init'?" in failed.stderr
    )
    assert "Traceback" not in failed.stdout + failed.stderr
    assert not (repo.root / "outputs/model.joblib").exists()

    repo.git("checkout", "params.yaml")
    repo.dvc("checkout")
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout
    assert (repo.root / "outputs/model.joblib").is_file()


def test_misspelt_section_reaches_validation(tiny_repo):
    tiny_repo.dvc("repro")
    params = tiny_repo.root / "params.yaml"
    params.write_text(params.read_text() + "trian:\n  max_iter: 20\n")
    failed = tiny_repo.dvc("repro", check=False)
    assert failed.returncode != 0
    assert "trian: unknown key; did you mean 'train'?" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_sweep_value_written_by_exp_run_is_read_as_a_number(tiny_repo):
    tiny_repo.dvc("repro")
    result = tiny_repo.dvc("exp", "run", "-S", "train.alpha=0.00001")
    assert "alpha: 1e-05" in (tiny_repo.root / "params.yaml").read_text()
    assert tiny_repo.ran_stages(result) == ["train", "visualize"]
    shown = tiny_repo.dvc("exp", "show", "--csv").stdout
    assert "1e-05" in shown


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_killed_training_leaves_nothing_and_rerun_gives_the_same_numbers(
    tmp_path, tiny_mirror, signum
):
    env = tiny_env(tiny_mirror, tmp_path / "cache")
    reference = Repo(tmp_path / "reference", env)
    use_tiny_data(reference, tiny_mirror)
    reference.dvc("repro")

    repo = Repo(tmp_path / "repo", env)
    use_tiny_data(repo, tiny_mirror)
    # Train for (practically) ever, so that the stage is surely stopped mid-fit.
    repo.set_param("max_iter", "1000000")
    repo.set_param("n_iter_no_change", "1000000")
    committed_lock = yaml.safe_load((repo.root / "dvc.lock").read_text())["stages"]
    process = subprocess.Popen(
        ["dvc", "repro"],
        cwd=repo.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    for line in process.stdout:
        output.append(line)
        if line.startswith("Iteration 3,"):
            os.killpg(process.pid, signum)
            break
    output += process.stdout.readlines()
    assert process.wait(timeout=60) != 0
    assert any(line.startswith("Iteration 3,") for line in output), "".join(output)
    assert "Traceback" not in "".join(output)
    leftovers = sorted(p.name for p in (repo.root / "outputs").iterdir())
    assert leftovers == [".gitignore"], leftovers
    # Only fetch_and_scale, which finished, reached the DVC cache and dvc.lock.
    cache = repo.root / ".dvc" / "cache" / "files" / "md5"
    cached = {p.parent.name + p.name for p in cache.rglob("*") if p.is_file()}
    assert cached == {md5(repo.root / "data/images.npy"), md5(repo.root / "data/labels.npy")}
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())["stages"]
    assert lock["train"] == committed_lock["train"]

    repo.set_param("max_iter", "10")
    repo.set_param("n_iter_no_change", "10")
    result = repo.dvc("repro")
    assert repo.ran_stages(result) == ["train", "visualize"]
    for name in (
        "outputs/loss.csv",
        "outputs/metrics.json",
        "outputs/weights.npz",
        "outputs/model.joblib",
    ):
        assert (repo.root / name).read_bytes() == (reference.root / name).read_bytes(), name


@pytest.mark.real_data
@pytest.mark.skipif(
    not real_mirror(), reason="set MNIST_MIRROR to a mirror of the real MNIST files"
)
def assert_prints_the_published_numbers(output: str, version: published.Version) -> None:
    """The stage printed ``version``'s numbers to the digits they were published with:
    each loss to 8 decimals (within 5e-9 of the page's), each score to 6."""
    losses = re.findall(r"^Iteration (\d+), loss = (\S+)$", output, flags=re.M)
    assert losses == [(str(i), f"{loss:.8f}") for i, loss in enumerate(version.losses, start=1)]
    train, test = version.train_accuracy, version.test_accuracy
    assert f"Training set score: {train:f}\nTest set score: {test:f}\n" in output


def assert_watched_it_learn(repo: Repo, printed: str, metrics: dict) -> None:
    """The example's fit epoch by epoch, on the real data: the losses as published, the
    last epoch's accuracies metrics.json's, the weights of every epoch with the last the
    model's, and the units' verdicts (docs/epochs.md, as measured on the example)."""
    files = Layout.under(repo.root)
    epochs, losses = formats.read_epoch_metric(files.epochs, "train/loss")
    assert epochs == list(range(1, 11))
    assert [f"{loss:.8f}" for loss in losses] == [f"{x:.8f}" for x in EXAMPLE_2017.losses]
    for name, key in (("train/accuracy", "train_accuracy"), ("test/accuracy", "test_accuracy")):
        steps, values = formats.read_epoch_metric(files.epochs, name)
        assert steps == epochs and values[-1] == metrics[key]
        assert 0.94 < values[0] < values[-1] <= 0.99  # it learnt, epoch by epoch
    kept, layers, model_epoch = formats.read_weights_by_epoch(files.weights_by_epoch)
    assert kept.tolist() == list(range(11)) and layers.shape == (11, 784, 50)
    assert model_epoch == 10
    np.testing.assert_array_equal(layers[-1], formats.read_weights(files.weights))
    assert json.loads(files.units_metrics.read_text()) == {
        "units": 50,
        "dead": 2,
        "barely_trained": 3,
        "unstructured": 1,
    }
    assert "units: 50 (2 never active on the test set, 3 barely trained, 1 unstructured)" in (
        printed
    )
    drawn_noise = [u["unit"] for u in formats.read_units(files.units_csv) if u["unit"] < 16]
    assert sorted(
        u["unit"]
        for u in formats.read_units(files.units_csv)
        if u["unit"] in drawn_noise and u["verdict"] != "structured"
    ) == [8, 10, 13]
    assert sorted(p.name for p in files.filters.iterdir()) == sorted(f"{e}.png" for e in range(11))


def test_real_data_gives_the_examples_numbers_and_the_committed_lock(tmp_path):
    repo = Repo(
        tmp_path / "repo", repo_env(MNIST_MIRROR=real_mirror(), MNIST_CACHE=str(tmp_path / "cache"))
    )
    result = repo.dvc("repro")
    assert repo.ran_stages(result) == ["fetch_and_scale", "train", "visualize"]
    assert_prints_the_published_numbers(result.stdout, EXAMPLE_2017)

    metrics = json.loads((repo.root / "outputs/metrics.json").read_text())
    assert metrics["train_accuracy"] == 0.9868 and metrics["test_accuracy"] == 0.97
    assert metrics["iterations"] == 10
    assert f"{metrics['final_loss']:.8f}" == f"{EXAMPLE_2017.losses[-1]:.8f}"
    assert_watched_it_learn(repo, result.stdout, metrics)
    committed = (paths.ROOT / "dvc.lock").read_bytes()
    assert (repo.root / "dvc.lock").read_bytes() == committed
    assert repo.ran_stages(repo.dvc("repro")) == []
    verified = repo.run(sys.executable, "-m", "tools.verify", "--strict")
    assert (
        "verdict: every output is dvc.lock's bytes, and they hold the published numbers of"
        " scikit-learn's example as published in 2017"
    ) in verified.stderr

    # Today's gallery version, as `make gallery` runs it: an experiment in a temporary
    # copy, which leaves the workspace as it was; then applied, and verified.
    overrides = [arg for o in published.overrides(GALLERY_2021) for arg in ("-S", o)]
    gallery = repo.dvc("exp", "run", "--temp", "--name", "gallery", *overrides)
    assert repo.ran_stages(gallery) == ["train", "visualize"]
    assert_prints_the_published_numbers(gallery.stdout, GALLERY_2021)
    assert repo.git("status", "--porcelain") == ""
    repo.dvc("exp", "apply", "gallery")
    predictions = np.loadtxt(repo.root / "outputs/predictions.csv", delimiter=",", skiprows=1)
    assert len(predictions) == 49000 and sorted(predictions[:, 0]) != list(range(21000, 70000))
    verified = repo.run(sys.executable, "-m", "tools.verify", "--numbers")
    assert (
        "verdict: the published numbers of the stable gallery's, since 2021 hold, within tolerance"
    ) in verified.stderr
    repo.git("checkout", "--", ".")
    repo.dvc("checkout", "--force")

    # Other machines: the same bytes again, whatever their cores, kernels and numpy.
    if PINNABLE:
        assert_every_machine_reproduces_the_lock(repo, committed, forced=("train",))

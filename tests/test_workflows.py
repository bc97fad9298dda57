"""End to end, DVC's own workflows on tiny data: a queued sweep of experiments, and two
clones sharing results and experiments through a git server and a DVC remote."""

import json
import re
import time
from pathlib import Path

import pytest

from tests.conftest import Repo, repo_env
from tests.project import stages_run

pytestmark = pytest.mark.slow

STAGES = ("fetch_and_scale", "train", "visualize")

# No download leaves the machine: the stages run in dvc's subprocesses, out of
# monkeypatch's reach, and the environment switches the public mirrors off.
OFFLINE = {"MNIST_PUBLIC_MIRRORS": "off"}

# A guard against a hung queue, far above the ~25 s that four tiny experiments take.
QUEUE_TIMEOUT_SECONDS = 300


class Clone(Repo):
    """A ``git clone`` of a shared git server: the project on a second machine."""

    def __init__(self, url: Path, root: Path, branch: str, env: dict[str, str]):
        self.root, self.env = root.parent, env
        self.git("clone", "-q", "--branch", branch, str(url), root.name)
        self.root = root


def experiments(repo: Repo) -> dict[str, dict]:
    """The experiments of ``dvc exp show --json`` by name: their params, metrics, deps, outs."""
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    return {
        experiment["name"]: experiment["revs"][0]["data"]
        for baseline in shown
        for experiment in baseline["experiments"] or ()
    }


def train_params(data: dict) -> dict:
    return data["params"]["params.yaml"]["data"]["train"]


def metrics(data: dict) -> dict:
    return data["metrics"]["outputs/metrics.json"]["data"]


def queue(repo: Repo, *args: str) -> list[str]:
    """``dvc exp run --queue *args``: the names of the experiments it queued."""
    result = repo.dvc("exp", "run", "--queue", *args)
    return re.findall(r"Queued experiment '([\w-]+)' for future execution", result.stdout)


def run_queue(repo: Repo, jobs: int) -> dict[str, str]:
    """Start ``jobs`` queue workers and wait for the queue to drain; each task's final status."""
    repo.dvc("queue", "start", "--jobs", str(jobs))
    deadline = time.monotonic() + QUEUE_TIMEOUT_SECONDS
    while True:
        status = repo.dvc("queue", "status").stdout
        tasks = dict(re.findall(r"(?m)^[0-9a-f]{7,}\s+(\S+)\s.*\s(\w+)$", status))
        if not {"Queued", "Running"} & set(tasks.values()):
            return tasks
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue did not drain in {QUEUE_TIMEOUT_SECONDS} s:\n{status}")
        time.sleep(1)


def queue_logs(repo: Repo, names: list[str]) -> dict[str, str]:
    return {name: repo.dvc("queue", "logs", name).stdout for name in names}


@pytest.fixture
def queue_repo(tiny_repo):
    """tiny_repo, offline, whose queue workers are stopped at the end (they idle 10 s otherwise)."""
    tiny_repo.env |= OFFLINE
    yield tiny_repo
    tiny_repo.dvc("queue", "stop", "--kill", check=False)


def test_queued_experiments_run_in_temporary_clones_with_the_callers_data_and_env(queue_repo):
    repo = queue_repo
    repo.dvc("repro")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "first run")

    sweep = queue(repo, "-S", "train.learning_rate_init=0.05,0.1,0.2")
    assert len(sweep) == 3, sweep
    # One more, that has to fetch the data again in its temporary clone, from the tiny
    # mirror that only MNIST_MIRROR and the committed data/mnist.sha256 point to.
    [refetch] = queue(repo, "-S", "data.pixel_dtype=float32")
    statuses = run_queue(repo, jobs=2)
    logs = queue_logs(repo, [*sweep, refetch])
    assert statuses == dict.fromkeys(logs, "Success"), logs

    shown = experiments(repo)
    rates = {name: train_params(shown[name])["learning_rate_init"] for name in sweep}
    assert sorted(rates.values()) == [0.05, 0.1, 0.2]
    committed = json.loads((repo.root / "outputs/metrics.json").read_text())
    for name, rate in rates.items():
        scores = metrics(shown[name])
        assert 0 <= scores["train_accuracy"] <= 1 and 0 <= scores["test_accuracy"] <= 1, scores
        # data/ is git-ignored, so not in the temporary clone's commit: DVC checked it
        # out of the cache instead of fetching it again.
        assert "Stage 'fetch_and_scale' didn't change, skipping" in logs[name], logs[name]
        ran = stages_run(logs[name])
        if rate == 0.1:
            # params.yaml's own value: nothing changed, so nothing ran, like `dvc repro`.
            assert ran == [] and scores == committed, logs[name]
        else:
            assert ran == ["train", "visualize"], logs[name]
            assert scores != committed

    assert stages_run(logs[refetch]) == list(STAGES), logs[refetch]
    assert shown[refetch]["params"]["params.yaml"]["data"]["data"]["pixel_dtype"] == "float32"
    assert set(metrics(shown[refetch])) == set(committed)
    # The runs happened elsewhere: the workspace is still the committed first run.
    assert repo.git("status", "--porcelain") == ""
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout


def test_a_second_clone_pulls_the_results_and_shares_its_experiments(tiny_repo, tmp_path):
    machine_a = tiny_repo
    server, storage = tmp_path / "server.git", tmp_path / "dvc-storage"
    machine_a.git("init", "-q", "--bare", str(server))
    machine_a.git("remote", "add", "origin", str(server))
    # .dvc/config, where the remote is named, must reach the server for B to find it.
    machine_a.dvc("remote", "add", "--default", "storage", str(storage))
    machine_a.dvc("repro")
    machine_a.git("add", "-A")
    machine_a.git("commit", "-qm", "first run, and where its data is stored")
    branch = machine_a.git("branch", "--show-current").strip()
    machine_a.git("push", "-q", "origin", branch)
    machine_a.dvc("push")

    # B has no way to the data but the DVC remote: no mirror, no download cache, offline.
    b_env = repo_env(
        MNIST_MIRROR=str(tmp_path / "no-mirror"), MNIST_CACHE=str(tmp_path / "b-cache"), **OFFLINE
    )
    machine_b = Clone(server, tmp_path / "machine-b", branch, b_env)
    machine_b.dvc("pull")
    for name in ("data/images.npy", "outputs/metrics.json"):
        assert (machine_b.root / name).read_bytes() == (machine_a.root / name).read_bytes(), name
    result = machine_b.dvc("repro")
    assert machine_b.ran_stages(result) == []
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in result.stdout, result.stdout

    result = machine_b.dvc("exp", "run", "--name", "from-b", "-S", "train.max_iter=5")
    assert machine_b.ran_stages(result) == ["train", "visualize"]
    machine_b.dvc("exp", "push", "origin", "from-b")

    machine_a.dvc("exp", "pull", "origin", "from-b")
    shown = experiments(machine_a)["from-b"]
    assert train_params(shown)["max_iter"] == 5
    assert metrics(shown)["iterations"] == 5

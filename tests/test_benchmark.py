"""The benchmark's rounds (benchmarks/run.py), run with a runner that records each command
instead of running it: every scenario of ``SCENARIOS`` runs once a round, clone by clone,
after its setup."""

import shutil
import sys
from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.scenarios import SCENARIOS
from pipeline import paths


class RecordingRunner:
    """Records what the benchmark would run: each timed command by name, and the untimed
    ones with the params.yaml they ran on."""

    def __init__(self):
        self.timed: list[tuple[str, list[str], Path, dict | None]] = []
        self.untimed: list[list[str]] = []

    def run(self, cmd, *, cwd, name, env=None) -> run.Run:
        self.timed.append((name, cmd, cwd, env))
        params = (cwd / "params.yaml").read_text() if cwd != paths.ROOT else ""
        return run.Run(load_before=None, seconds=1.0, max_rss_bytes=1, output=params)

    def check(self, cmd, *, cwd) -> str:
        self.untimed.append(cmd)
        if cmd[:3] == ["git", "checkout", "--"]:
            shutil.copyfile(paths.PROJECT.params, cwd / "params.yaml")
        return ""


def a_clone(runner, target: Path, commit: str) -> Path:
    """What fresh_clone makes, as far as the scenarios read it: dvc.yaml and params.yaml."""
    target.mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copyfile(paths.ROOT / name, target / name)
    return target


@pytest.fixture
def bench(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "fresh_clone", a_clone)
    monkeypatch.setattr(run, "outputs_hardlinked", lambda repo: True)

    def make(pinned_env):
        return run.Benchmark(
            RecordingRunner(), tmp_path, run.Results(), "0" * 40, pinned_env=pinned_env
        )

    return make


def test_a_round_runs_every_scenario_once_clone_by_clone(bench):
    benchmark = bench({"OPENBLAS_CORETYPE": "Haswell"})
    benchmark.round(1, measure_stages=True)
    names = [name for name, *_ in benchmark.runner.timed]
    assert names == [
        "example-1",
        "example_pinned-1",
        "cold_hardlink-1",
        "cold_repro-1",
        "noop_repro-1",
        "status-1",
        "visualize_change-1",
        "train_change-1",
        "train_pinned-1",
        "train_unpinned-1",
        "stage-fetch_and_scale",
        "stage-train",
        "stage-visualize",
        "float32_cold-1",
    ]
    assert {key for key, samples in benchmark.results.seconds.items() if samples} == {
        scenario.key for scenario in SCENARIOS
    }
    timed = {name: (cmd, cwd, env) for name, cmd, cwd, env in benchmark.runner.timed}
    assert timed["example_pinned-1"][2] == {"OPENBLAS_CORETYPE": "Haswell"}
    assert timed["example-1"][2] is None
    assert timed["example-1"][0][:3] == [sys.executable, "-m", "benchmarks.example"]
    assert timed["train_pinned-1"][0] == ["python", "-m", "stages", "train"]
    assert timed["status-1"][0] == [*benchmark.dvc, "status"]
    assert benchmark.edits == {
        "visualize.rows": "4 -> 2",
        "train.max_iter": "10 -> 9",
        "data.pixel_dtype": "float64 -> float32",
    }
    assert [*benchmark.dvc, "config", "--local", "cache.type", "hardlink"] in (
        benchmark.runner.untimed
    )
    # Nothing was really run, so no stage was said to run: each repro warns of it.
    repros = [s for s in SCENARIOS if s.stages]
    assert len([w for w in benchmark.results.warnings if "dvc ran stages none" in w]) == len(repros)


def test_a_cpu_that_cannot_run_the_pin_skips_the_pins_scenarios(bench):
    benchmark = bench(None)
    benchmark.round(1, measure_stages=False)
    names = {name.removesuffix("-1") for name, *_ in benchmark.runner.timed}
    assert names == {s.key for s in SCENARIOS if not s.needs_pin}

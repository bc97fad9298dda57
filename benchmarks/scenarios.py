"""The benchmark's scenarios, one record each (``Scenario``): its name, its label in the
report, its command, the clone it runs in, its untimed setup and the stages a ``dvc
repro`` should run. ``benchmarks/run.py`` runs them round by round; a new scenario is one
more record in ``SCENARIOS``."""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import dvc_api

if TYPE_CHECKING:
    from benchmarks.run import Benchmark

EXAMPLE = "benchmarks.example"  # python -m, from the root: it imports pipeline.published


@dataclass(frozen=True)
class Scenario:
    """One benchmarked command, as the report names it and as each round runs it.

    ``command`` is the command's words, the first of which says what runs: ``dvc`` (this
    Python's dvc), ``python`` (this Python) or ``stage`` (the command that dvc.yaml gives
    the stage named next); ``{scratch}`` is the round's scratch folder. ``clone`` is
    where it runs: None for this repository, else the fresh clone of that name (one of
    ``CLONES``), made for each round, where the scenarios run in this table's order, each
    on what the ones before it left. ``setup`` runs untimed before it.
    """

    key: str  # in results.json
    label: str  # in the report
    command: tuple[str, ...]
    clone: str | None = None
    setup: tuple[Callable[["Benchmark", Path], None], ...] = ()
    # For a dvc repro: the stages it should run; any other is a warning, because the
    # timing would then measure another scenario.
    stages: tuple[str, ...] | None = None
    # Skipped where the CPU cannot run the pinned code paths (the pin's cost).
    needs_pin: bool = False
    # Run under the variables that pipeline/cpu.py sets (for the example, which does not
    # pin itself as the stages do).
    pinned_env: bool = False
    # After a cold repro: record the clone's cache.type and whether the outputs are
    # hardlinks; and warn if it rewrote the committed dvc.lock.
    cache_links: bool = False
    lock_unchanged: bool = False

    @property
    def dvc(self) -> bool:
        """A dvc command: its peak RSS is the largest of its process tree."""
        return self.command[0] == "dvc"


def edit(key: str, value: str) -> Callable[["Benchmark", Path], None]:
    """A setup step: set ``key`` to ``value`` in the clone's params.yaml."""
    return lambda bench, repo: bench.edit(repo, key, value)


def cache_type(kind: str) -> Callable[["Benchmark", Path], None]:
    """A setup step: ``dvc config --local cache.type kind`` in the clone."""
    return lambda bench, repo: bench.runner.check(
        [*bench.dvc, "config", "--local", "cache.type", kind], cwd=repo
    )


def cold(bench: "Benchmark", repo: Path) -> None:
    """A setup step: no DVC cache and no outputs in the clone."""
    make_cold(repo)


def default_params(bench: "Benchmark", repo: Path) -> None:
    """A setup step: the clone's params.yaml as committed."""
    bench.runner.check(["git", "checkout", "--", "params.yaml"], cwd=repo)


# The train stage with numpy imported before its entry point: numpy and OpenBLAS have
# then read their variables already, so the pin cannot apply (the stage says so on
# stderr) and the stage runs on the code paths this CPU picks, like the example script.
TRAIN_UNPINNED = "import numpy; from stages.__main__ import main; main(['train'])"
EXAMPLE_COMMAND = ("python", "-m", EXAMPLE, "--png", "{scratch}/example.png")
ALL_STAGES = ("fetch_and_scale", "train", "visualize")

# The clones of a round, in the order they run; "main" is b's, where each stage's peak
# RSS is measured in round 1, after its scenarios, with the committed params.
CLONES = (None, "hardlink", "main", "float32")
STAGE_MEMORY_CLONE = "main"

# Every scenario, in the report's order: adding one is adding its record here.
SCENARIOS = (
    Scenario("example", "a. example script", EXAMPLE_COMMAND),
    Scenario(
        "example_pinned",
        "a. example script, pinned code paths",
        EXAMPLE_COMMAND,
        needs_pin=True,
        pinned_env=True,
    ),
    Scenario(
        "cold_repro",
        "b. cold dvc repro",
        ("dvc", "repro"),
        clone="main",
        setup=(cold,),
        stages=ALL_STAGES,
        cache_links=True,
        lock_unchanged=True,
    ),
    Scenario(
        "cold_hardlink",
        "b. cold dvc repro, cache.type hardlink",
        ("dvc", "repro"),
        clone="hardlink",
        setup=(cache_type("hardlink"), cold),
        stages=ALL_STAGES,
        cache_links=True,
    ),
    Scenario("noop_repro", "c. no-op dvc repro", ("dvc", "repro"), clone="main", stages=()),
    Scenario("status", "c. dvc status", ("dvc", "status"), clone="main"),
    Scenario(
        "visualize_change",
        "d. visualize-only change + dvc repro",
        ("dvc", "repro"),
        clone="main",
        setup=(edit("visualize.rows", "2"),),
        stages=("visualize",),
    ),
    Scenario(
        "train_change",
        "e. train-only change + dvc repro",
        ("dvc", "repro"),
        clone="main",
        setup=(edit("train.max_iter", "9"),),
        stages=("train", "visualize"),
    ),
    Scenario(
        "float32_cold",
        "f. float32 cold dvc repro",
        ("dvc", "repro"),
        clone="float32",
        setup=(edit("data.pixel_dtype", "float32"), cold),
        stages=ALL_STAGES,
    ),
    Scenario(
        "train_pinned",
        "g. train stage alone, pinned",
        ("stage", "train"),
        clone="main",
        setup=(default_params,),
        needs_pin=True,
    ),
    Scenario(
        "train_unpinned",
        "g. train stage alone, unpinned",
        ("python", "-c", TRAIN_UNPINNED),
        clone="main",
        needs_pin=True,
    ),
)
BY_KEY = {scenario.key: scenario for scenario in SCENARIOS}


def make_cold(repo: Path) -> None:
    """Remove the DVC cache and every output that dvc.yaml declares."""
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)
    for out in dvc_api.declared_outputs(repo):
        path = repo / out
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

"""Benchmark the DVC pipeline against scikit-learn's example, as published in 2017 (the
defaults of params.yaml), run as one script.

Scenarios, run round-robin (each once in round 1, then each again in round 2 ...) so
that a slow spell of the machine hits all of them alike:

  a  example         ``python -m benchmarks.example``: the example on the same local data
     pinned example  the same, under the code paths the stages pin (``pipeline/cpu.py``)
  b  cold repro      ``dvc repro`` in a fresh clone, with no DVC cache and no outputs,
                     linking them from the cache as .dvc/config's ``cache.type`` says
     hardlinked      the same, run just before it in a clone of its own with ``dvc
                     config --local cache.type hardlink``; b over this one is what
                     .dvc/config's link type costs against hardlinks
  c  no-op repro     ``dvc repro`` again, nothing changed; then ``dvc status``
  d  visualize-only  ``visualize.rows`` changed, then ``dvc repro``
  e  train-only      ``train.max_iter`` changed, then ``dvc repro``
  f  float32 cold    ``data.pixel_dtype: float32``, cold ``dvc repro``
  g  train alone     in b's clone after e: the train stage's command run directly
                     (pinned, as every stage is), then the same stage with numpy loaded
                     before its entry point, too late for the pin to apply

The example script does not run the stages' entry point, so it runs on whatever code paths
numpy and OpenBLAS pick for this CPU; the pinned example and g measure what the pin costs.
Where the CPU cannot run the pinned paths, both are skipped and the report says why.

Every DVC scenario runs in a temporary ``git clone`` of this repository at the commit
that was HEAD when the benchmark started: uncommitted changes are not measured.

Wall times are reported as medians. Peak resident memory is ``ru_maxrss`` from
``os.wait4``: of the example in every round, and of each stage once (round 1), by
running the stage's command from dvc.yaml directly in the reproduced clone. ``dvc
repro`` runs the stages as grandchildren, so its own figure is only the largest over
its whole process tree.

The report, ``results.md`` and ``results.json``, and every command's log go to
``benchmarks/out/``, which git ignores; ``--publish`` also copies the report over the
committed ``benchmarks/results.{md,json}``. The report and stdout give each target's
verdict, PASS or FAIL with the measured value and the limit, and a one-line summary.

The exit code is 0 whether targets pass or fail: this is a report. It is non-zero only
when a command fails; the tail of the command's output is then printed.

Usage: ``python -m benchmarks.run [--repeats N] [--out DIR] [--publish]`` (``make bench``,
``make bench-publish``).
"""

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import cpu
from tests import project

log = logging.getLogger("benchmark")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "benchmarks.example"  # python -m, from the root: it imports pipeline.published
# Where the committed report lives, and where every run writes (git ignores it).
PUBLISHED = ROOT / "benchmarks"
DEFAULT_OUT = PUBLISHED / "out"
REPORT_FILES = ("results.md", "results.json")
DEFAULT_MIRROR = ROOT.parent / "shared" / "mnist"

# Scenario keys, in the report's order, and how the report names them.
SCENARIOS = {
    "example": "a. example script",
    "example_pinned": "a. example script, pinned code paths",
    "cold_repro": "b. cold dvc repro",
    "cold_hardlink": "b. cold dvc repro, cache.type hardlink",
    "noop_repro": "c. no-op dvc repro",
    "status": "c. dvc status",
    "visualize_change": "d. visualize-only change + dvc repro",
    "train_change": "e. train-only change + dvc repro",
    "float32_cold": "f. float32 cold dvc repro",
    "train_pinned": "g. train stage alone, pinned",
    "train_unpinned": "g. train stage alone, unpinned",
}
# The scenarios that need the CPU to run the pinned code paths.
PIN_COST = ("example_pinned", "train_pinned", "train_unpinned")

# Ratios of two scenarios' median wall times: (numerator, denominator, what it tells).
RATIOS = {
    "noop_repro_vs_status": ("noop_repro", "status", "no-op dvc repro / dvc status"),
    "cold_repro_vs_hardlink": (
        "cold_repro",
        "cold_hardlink",
        "the cache's link type: cold dvc repro with .dvc/config's cache.type / with hardlinks",
    ),
    "example_pinned_vs_example": (
        "example_pinned",
        "example",
        "the pin's cost: example script pinned / unpinned",
    ),
    "train_pinned_vs_unpinned": (
        "train_pinned",
        "train_unpinned",
        "the pin's cost: train stage pinned / unpinned",
    ),
}

# The train stage with numpy imported before its entry point: numpy and OpenBLAS have
# then read their variables already, so the pin cannot apply (the stage says so on
# stderr) and the stage runs on the code paths this CPU picks, like the example script.
TRAIN_UNPINNED = "import numpy; from stages.__main__ import main; main(['train'])"

# The params edits of scenarios d, e and f: (key, new value).
VISUALIZE_CHANGE = ("visualize.rows", "2")
TRAIN_CHANGE = ("train.max_iter", "9")
FLOAT32 = ("data.pixel_dtype", "float32")

# The stages each DVC scenario should run; anything else is reported as a warning,
# because the timing would then measure a different scenario.
EXPECTED_STAGES = {
    "cold_repro": ["fetch_and_scale", "train", "visualize"],
    "cold_hardlink": ["fetch_and_scale", "train", "visualize"],
    "noop_repro": [],
    "visualize_change": ["visualize"],
    "train_change": ["train", "visualize"],
    "float32_cold": ["fetch_and_scale", "train", "visualize"],
}

# Targets, checked against medians: ratios to the example or dvc status, or seconds.
COLD_VS_EXAMPLE = 1.0
STAGE_RSS_VS_EXAMPLE = 0.6
NOOP_VS_STATUS = 1.3
VISUALIZE_SECONDS = 1.5
FLOAT32_VS_EXAMPLE = 0.7


class CommandFailed(Exception):
    """A benchmarked command exited non-zero."""

    def __init__(self, cmd: list[str], returncode: int, output: str, log_path: Path | None = None):
        where = f" (log: {log_path})" if log_path else ""
        super().__init__(f"`{shlex.join(cmd)}` exited with {returncode}{where}")
        self.output = output


@dataclass(frozen=True)
class Run:
    """One measured process: wall time, peak RSS of its process tree, its output."""

    load_before: float | None
    seconds: float
    max_rss_bytes: int
    output: str


@dataclass
class Results:
    """Every sample, by scenario key."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in SCENARIOS})
    max_rss_bytes: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in SCENARIOS})
    # The 1-minute load average as each sample started: other work inflates timings.
    load_before: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in SCENARIOS})
    stage_rss_bytes: dict[str, int] = field(default_factory=dict)
    # Scenarios not run, with the reason.
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, key: str, run: Run) -> None:
        self.seconds[key].append(run.seconds)
        self.max_rss_bytes[key].append(run.max_rss_bytes)
        self.load_before[key].append(run.load_before)


# ---------------------------------------------------------------- running processes


class Runner:
    """Runs commands, by default with one environment, logging each one's output to a file."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.count = 0

    def run(
        self, cmd: list[str], *, cwd: Path, name: str, env: dict[str, str] | None = None
    ) -> Run:
        """Run ``cmd`` to completion; its wall time and ``ru_maxrss`` (via ``os.wait4``)."""
        self.count += 1
        log_path = self.log_dir / f"{self.count:03d}-{name}.log"
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with log_path.open("w+b") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=self.env if env is None else env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            output = out.read().decode(errors="replace")
        if proc.returncode != 0:
            raise CommandFailed(cmd, proc.returncode, output, log_path)
        # ru_maxrss is in kilobytes on Linux, in bytes on macOS.
        rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
        log.debug("%s: %.2f s, %.0f MB", name, seconds, rss / 1e6)
        return Run(load_before=load, seconds=seconds, max_rss_bytes=rss, output=output)

    def check(self, cmd: list[str], *, cwd: Path) -> str:
        """Run an untimed set-up command; its output."""
        done = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise CommandFailed(cmd, done.returncode, done.stdout + done.stderr)
        return done.stdout


def tool_environment(mirror: Path, scratch: Path) -> dict[str, str]:
    """The environment of every command: this Python's bin folder first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MNIST_MIRROR"] = str(mirror)
    # An empty download cache of our own, so that a user's cache cannot stand in for
    # the mirror (the stage never caches files it reads from a local folder).
    env["MNIST_CACHE"] = str(scratch / "mnist-cache")
    env["MPLBACKEND"] = "Agg"
    return env


def pinned_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the variables ``pipeline/cpu.py`` sets before numpy loads, as it sets them."""
    return {k: v for k, v in env.items() if k not in cpu.CLEARED} | cpu.PINNED


def dvc_command() -> list[str]:
    """The dvc of this Python: its ``dvc`` script when there is one, else ``python -m dvc``."""
    script = Path(sys.executable).parent / "dvc"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "dvc"]


# ---------------------------------------------------------------- clones and params


def fresh_clone(runner: Runner, target: Path, commit: str) -> Path:
    """A ``git clone`` of this repository at ``commit``, at ``target``, with DVC state inside.

    DVC keeps per-repository state (hashes, indexes) in a site cache folder outside the
    repository; pointing it inside the clone keeps clones apart and cleans up with them.
    """
    runner.check(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(target)], cwd=ROOT)
    # The commit, not HEAD: someone may commit while the benchmark runs.
    runner.check(["git", "checkout", "--quiet", "--detach", commit], cwd=target)
    (target / ".dvc" / "config.local").write_text(
        f"[core]\n    site_cache_dir = {target / '.dvc' / 'site-cache'}\n", encoding="utf-8"
    )
    return target


def make_cold(repo: Path) -> None:
    """Remove the DVC cache and every output that dvc.yaml declares."""
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)
    for out in project.declared_outputs(repo):
        path = repo / out
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def outputs_hardlinked(repo: Path) -> bool:
    """Whether every output that ``repo``'s dvc.yaml declares is a hardlink (to the cache)."""
    return all((repo / out).stat().st_nlink > 1 for out in project.declared_outputs(repo))


# ---------------------------------------------------------------- the rounds


class Benchmark:
    """The scenarios of one round, and the stage memory measurements."""

    def __init__(
        self,
        runner: Runner,
        scratch: Path,
        results: Results,
        commit: str,
        *,
        pinned_env: dict[str, str] | None,
    ):
        self.runner = runner
        self.commit = commit
        self.scratch = scratch
        self.results = results
        # None where the CPU cannot run the pinned code paths: no pin-cost scenarios.
        self.pinned_env = pinned_env
        self.dvc = dvc_command()
        self.edits: dict[str, str] = {}
        # Per cold repro scenario: the clone's cache.type, and whether outputs were hardlinked.
        self.cache_links: dict[str, dict] = {}

    def repro(self, repo: Path, key: str, round_no: int) -> None:
        """Time ``dvc repro`` in ``repo`` as scenario ``key``; warn if it ran unexpected stages."""
        run = self.runner.run([*self.dvc, "repro"], cwd=repo, name=f"{key}-{round_no}")
        self.results.add(key, run)
        ran = project.stages_run(run.output)
        if ran != EXPECTED_STAGES[key]:
            self.results.warnings.append(
                f"round {round_no}, {SCENARIOS[key]}: dvc ran stages {ran or 'none'},"
                f" expected {EXPECTED_STAGES[key] or 'none'}"
            )

    def check_lock_unchanged(self, repo: Path, round_no: int) -> None:
        """Warn when a cold repro rewrites the committed dvc.lock.

        A stale dvc.lock is a bug of its own, and it slows the cold repro: dvc hashes a
        dependency the lock does not know twice (once under a legacy hash name).
        """
        changed = self.runner.check(["git", "status", "--porcelain", "--", "dvc.lock"], cwd=repo)
        if changed.strip():
            self.results.warnings.append(
                f"round {round_no}: the cold dvc repro rewrote the committed dvc.lock"
                " (it is stale; commit the one `dvc repro` writes)"
            )

    def record_cache_links(self, repo: Path, key: str, round_no: int) -> None:
        """Record the clone's cache.type and whether the cold repro ``key`` hardlinked its outputs.

        Warns when hardlinks were asked for but not made (a filesystem may refuse them):
        the ratio of the cold repros would then not measure what it says.
        """
        cache_type = self.runner.check([*self.dvc, "config", "cache.type"], cwd=repo).strip()
        hardlinked = outputs_hardlinked(repo)
        self.cache_links[key] = {
            "cache.type": cache_type or "unset (DVC's default)",
            "outputs_hardlinked": hardlinked,
        }
        if cache_type == "hardlink" and not hardlinked:
            self.results.warnings.append(
                f"round {round_no}, {SCENARIOS[key]}: the outputs are not hardlinks to the cache"
            )

    def edit(self, repo: Path, key: str, value: str) -> None:
        """Set ``key`` in the clone's params.yaml, recording the change for the report."""
        old = project.set_param(repo / "params.yaml", key, value)
        if old == value:
            raise ValueError(
                f"{key} is already {value} in params.yaml: the scenario needs a change"
            )
        self.edits[key] = f"{old} -> {value}"

    def round(self, round_no: int, *, measure_stages: bool) -> None:
        """Scenarios a to g once; with ``measure_stages``, each stage's peak RSS too."""
        example = [sys.executable, "-m", EXAMPLE, "--png", str(self.scratch / "example.png")]
        self.results.add("example", self.runner.run(example, cwd=ROOT, name=f"example-{round_no}"))
        if self.pinned_env is not None:
            run = self.runner.run(
                example, cwd=ROOT, name=f"example_pinned-{round_no}", env=self.pinned_env
            )
            self.results.add("example_pinned", run)

        with self.clone(f"round{round_no}-hardlink") as repo:
            self.runner.check([*self.dvc, "config", "--local", "cache.type", "hardlink"], cwd=repo)
            make_cold(repo)
            self.repro(repo, "cold_hardlink", round_no)
            self.record_cache_links(repo, "cold_hardlink", round_no)

        with self.clone(f"round{round_no}") as repo:
            make_cold(repo)
            self.repro(repo, "cold_repro", round_no)
            self.record_cache_links(repo, "cold_repro", round_no)
            self.check_lock_unchanged(repo, round_no)
            self.repro(repo, "noop_repro", round_no)
            status = self.runner.run([*self.dvc, "status"], cwd=repo, name=f"status-{round_no}")
            self.results.add("status", status)
            self.edit(repo, *VISUALIZE_CHANGE)
            self.repro(repo, "visualize_change", round_no)
            self.edit(repo, *TRAIN_CHANGE)
            self.repro(repo, "train_change", round_no)
            self.runner.check(["git", "checkout", "--", "params.yaml"], cwd=repo)
            if self.pinned_env is not None:
                self.train_alone(repo, round_no)
            if measure_stages:
                self.results.stage_rss_bytes = self.stage_rss(repo)

        with self.clone(f"round{round_no}-float32") as repo:
            self.edit(repo, *FLOAT32)
            make_cold(repo)
            self.repro(repo, "float32_cold", round_no)

    def train_alone(self, repo: Path, round_no: int) -> None:
        """Time the train stage's command in the reproduced ``repo``, then the stage unpinned."""
        commands = {
            "train_pinned": project.stage_commands(repo)["train"],
            "train_unpinned": ["python", "-c", TRAIN_UNPINNED],
        }
        for key, cmd in commands.items():
            self.results.add(key, self.runner.run(cmd, cwd=repo, name=f"{key}-{round_no}"))

    def stage_rss(self, repo: Path) -> dict[str, int]:
        """Run each stage's command directly in the reproduced ``repo``; its peak RSS."""
        return {
            stage: self.runner.run(cmd, cwd=repo, name=f"stage-{stage}").max_rss_bytes
            for stage, cmd in project.stage_commands(repo).items()
        }

    @contextlib.contextmanager
    def clone(self, name: str) -> Iterator[Path]:
        """A fresh clone for the block, deleted afterwards (untimed)."""
        repo = fresh_clone(self.runner, self.scratch / name, self.commit)
        try:
            yield repo
        finally:
            shutil.rmtree(repo, ignore_errors=True)


# ---------------------------------------------------------------- the report


def machine() -> dict:
    """The machine and software the numbers were measured with."""
    model = platform.processor() or platform.machine()
    memory = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
                break
    versions = {"python": platform.python_version()}
    for package in ("numpy", "scikit-learn", "dvc", "matplotlib"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "memory_bytes": memory,
        "platform": platform.platform(),
        "versions": versions,
    }


def git_state() -> dict:
    """The commit benchmarked, and whether the working tree differs from it."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return {"commit": head, "uncommitted_changes_not_measured": [d for d in dirty if d]}


def target(name: str, measured: float, limit: float, unit: str) -> dict:
    """A target met when ``measured`` is at most ``limit``; ``unit`` is "x" or "s"."""
    return {
        "target": name,
        "measured": measured,
        "limit": limit,
        "unit": unit,
        "verdict": "PASS" if measured <= limit else "FAIL",
    }


def with_unit(value: float, unit: str) -> str:
    return f"{value:.2f}x" if unit == "x" else f"{value:.2f} s"


def verdict_line(result: dict) -> str:
    """``PASS  name: measured (target <= limit)``."""
    return (
        f"{result['verdict']}  {result['target']}: {with_unit(result['measured'], result['unit'])}"
        f" (target <= {with_unit(result['limit'], result['unit'])})"
    )


def verdict_summary(targets: list[dict]) -> str:
    passed = sum(t["verdict"] == "PASS" for t in targets)
    return f"Targets: {passed} passed, {len(targets) - passed} failed."


def summarize(results: Results) -> dict:
    """Medians, ratios and target verdicts."""
    median = {k: statistics.median(v) for k, v in results.seconds.items() if v}
    median_rss = {k: int(statistics.median(v)) for k, v in results.max_rss_bytes.items() if v}
    example, example_rss = median["example"], median_rss["example"]
    ratios = {k: v / example for k, v in median.items()}
    pairs = {
        name: median[top] / median[bottom]
        for name, (top, bottom, _) in RATIOS.items()
        if top in median and bottom in median
    }
    stage_rss_ratio = {k: v / example_rss for k, v in results.stage_rss_bytes.items()}

    targets = [
        target("cold dvc repro / example, wall", ratios["cold_repro"], COLD_VS_EXAMPLE, "x"),
        *(
            target(f"stage {stage} / example, peak RSS", ratio, STAGE_RSS_VS_EXAMPLE, "x")
            for stage, ratio in stage_rss_ratio.items()
        ),
        target(
            "no-op dvc repro / dvc status, wall",
            pairs["noop_repro_vs_status"],
            NOOP_VS_STATUS,
            "x",
        ),
        target(
            "visualize-only change + dvc repro, wall",
            median["visualize_change"],
            VISUALIZE_SECONDS,
            "s",
        ),
        target(
            "float32 cold dvc repro / example, wall",
            ratios["float32_cold"],
            FLOAT32_VS_EXAMPLE,
            "x",
        ),
    ]
    return {
        "median_seconds": median,
        "median_max_rss_bytes": median_rss,
        "ratio_to_example": ratios,
        "ratios": pairs,
        "stage_rss_vs_example": stage_rss_ratio,
        "targets": targets,
    }


def markdown(report: dict) -> str:
    """The report as markdown: when and where, scenarios, stage memory, targets."""
    results, summary, info = report["samples"], report["summary"], report["machine"]
    load = {
        when: ", ".join(f"{x:.2f}" for x in values) if values else "unknown"
        for when, values in report["load_average"].items()
    }
    mb = 1e6
    lines = [
        "# Benchmark: DVC pipeline vs scikit-learn's example",
        "",
        f"Measured on {report['date'][:10]} at {report['date'][11:16]} UTC, commit"
        f" `{report['git']['commit'][:12]}`, {report['repeats']} round(s) round-robin.",
        f"Machine: {info['cpu_model']}, {info['nproc']} cores ({info['cpus_usable']} usable),"
        f" {(info['memory_bytes'] or 0) / 2**30:.1f} GiB; load average (1, 5, 15 min)"
        f" {load['before']} before, {load['after']} after.",
        "Software: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        "",
        "| scenario | median wall (s) | samples (s) | x example | peak RSS (MB) |",
        "|---|---:|---|---:|---:|",
    ]
    for key, label in SCENARIOS.items():
        if key in report["skipped"]:
            lines.append(f"| {label} | skipped: {report['skipped'][key]} | | | |")
            continue
        samples = results["seconds"][key]
        rss = summary["median_max_rss_bytes"][key] / mb
        rss_note = " *" if key == "status" or key in EXPECTED_STAGES else ""
        lines.append(
            f"| {label} | {summary['median_seconds'][key]:.2f} |"
            f" {', '.join(f'{s:.2f}' for s in samples)} |"
            f" {summary['ratio_to_example'][key]:.2f} | {rss:.0f}{rss_note} |"
        )
    lines += [
        "",
        "\\* for dvc commands: the largest process of the tree (dvc and the stages it ran).",
        "",
        "Ratios of median wall times:",
        "",
    ]
    for name, (top, _, meaning) in RATIOS.items():
        if name in summary["ratios"]:
            lines.append(f"- {meaning}: {summary['ratios'][name]:.2f}x")
        else:
            lines.append(f"- {meaning}: skipped, {report['skipped'].get(top, 'not measured')}")
    lines += ["", "Cache links of the cold dvc repros (last round):", ""]
    for key in (k for k in SCENARIOS if k in report["cache_links"]):
        links = report["cache_links"][key]
        lines.append(
            f"- {SCENARIOS[key]}: cache.type `{links['cache.type']}`, outputs hardlinked to"
            f" the cache: {'yes' if links['outputs_hardlinked'] else 'no'}"
        )
    lines += [
        "",
        "| stage (run directly, default params, round 1) | peak RSS (MB) | x example |",
        "|---|---:|---:|",
    ]
    for stage, rss in results["stage_rss_bytes"].items():
        lines.append(f"| {stage} | {rss / mb:.0f} | {summary['stage_rss_vs_example'][stage]:.2f} |")
    lines.append(
        f"| example (median) | {summary['median_max_rss_bytes']['example'] / mb:.0f} | 1.00 |"
    )
    lines += ["", "| target | limit | measured | verdict |", "|---|---:|---:|---|"]
    for result in summary["targets"]:
        lines.append(
            f"| {result['target']} | <= {with_unit(result['limit'], result['unit'])}"
            f" | {with_unit(result['measured'], result['unit'])} | **{result['verdict']}** |"
        )
    lines += ["", verdict_summary(summary["targets"])]
    if report["warnings"]:
        lines += ["", "Warnings:", *(f"- {w}" for w in report["warnings"])]
    if report["git"]["uncommitted_changes_not_measured"]:
        lines += ["", "Uncommitted changes (not measured: the clones are of the commit above):"]
        lines += [f"- `{c.strip()}`" for c in report["git"]["uncommitted_changes_not_measured"]]
    return "\n".join(lines) + "\n"


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time the DVC pipeline against scikit-learn's example (see module docstring)."
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of all scenarios (default: 3)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for results.json, results.md and logs/ (default: benchmarks/out/,"
        " which git ignores)",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also copy the report over the committed benchmarks/results.{md,json}",
    )
    parser.add_argument(
        "--tmpdir",
        type=Path,
        default=None,
        help="where to make the temporary clones (needs about 1 GB free; default: system temp)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    mirror = Path(os.environ.get("MNIST_MIRROR") or DEFAULT_MIRROR).expanduser().resolve()
    if not mirror.is_dir():
        log.error(
            "error: MNIST mirror %s is not a folder; set MNIST_MIRROR to the folder of the"
            " four MNIST .gz files and run again",
            mirror,
        )
        return 2
    # A failed run must not leave an earlier run's report or logs looking like its own.
    log_dir = args.out / "logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    for name in REPORT_FILES:
        (args.out / name).unlink(missing_ok=True)

    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_state(),
        "repeats": args.repeats,
        "mnist_mirror": str(mirror),
        "python": sys.executable,
        "dvc": shlex.join(dvc_command()),
        "load_average": {"before": load_average()},
    }
    results = Results()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mnist-mlp-bench-", dir=args.tmpdir) as tmp:
        scratch = Path(tmp)
        env = tool_environment(mirror, scratch)
        reason = cpu.why_not_pinnable_here()
        if reason:
            why = f"{reason}, so it cannot run the pinned code paths"
            log.info("skipping the pin's cost: %s", why)
            results.skipped = dict.fromkeys(PIN_COST, why)
        preset = [f"{k}={env[k]}" for k in (*cpu.PINNED, *cpu.CLEARED) if k in env]
        if preset:
            results.warnings.append(
                f"the environment sets {', '.join(preset)}: the unpinned runs ran with it"
            )
        runner = Runner(env, log_dir)
        bench = Benchmark(
            runner,
            scratch,
            results,
            report["git"]["commit"],
            pinned_env=None if reason else pinned_environment(env),
        )
        try:
            for round_no in range(1, args.repeats + 1):
                log.info("round %d of %d ...", round_no, args.repeats)
                bench.round(round_no, measure_stages=round_no == 1)
        except CommandFailed as exc:
            log.error("error: %s; the end of its output:\n%s", exc, exc.output[-4000:])
            return 1
        except ValueError as exc:  # a params edit that the repository no longer allows
            log.error("error: %s", exc)
            return 1
    report["load_average"]["after"] = load_average()
    report["total_seconds"] = time.perf_counter() - started
    report["params_edits"] = bench.edits
    report["cache_links"] = bench.cache_links
    report["samples"] = {
        "seconds": results.seconds,
        "max_rss_bytes": results.max_rss_bytes,
        "load_average_1min_before": results.load_before,
        "stage_rss_bytes": results.stage_rss_bytes,
    }
    report["summary"] = summarize(results)
    report["skipped"] = results.skipped
    report["warnings"] = results.warnings

    text = markdown(report)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "results.md").write_text(text, encoding="utf-8")
    written = [args.out / name for name in REPORT_FILES]
    if args.publish:
        for name in REPORT_FILES:
            shutil.copyfile(args.out / name, PUBLISHED / name)
        written += [PUBLISHED / name for name in REPORT_FILES]
    print(text)
    for result in report["summary"]["targets"]:
        print(verdict_line(result))
    print(verdict_summary(report["summary"]["targets"]))
    log.info(
        "total %.0f s; wrote %s; command logs in %s",
        report["total_seconds"],
        ", ".join(str(path) for path in written),
        log_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

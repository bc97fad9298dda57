"""Benchmark the DVC pipeline against scikit-learn's example, as published in 2017 (the
defaults of params.yaml), run as one script.

Scenarios (``benchmarks/scenarios.py``, one record each), run round-robin (each once in
round 1, then each again in round 2 ...) so that a slow spell of the machine hits all of
them alike:

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
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.params_edit import set_param
from benchmarks.report import (
    git_state,
    load_average,
    machine,
    markdown,
    summarize,
    verdict_line,
    verdict_summary,
)
from benchmarks.scenarios import (
    BY_KEY,
    CLONES,
    SCENARIOS,
    STAGE_MEMORY_CLONE,
    Scenario,
    default_params,
)
from pipeline import cpu, dvc_api
from pipeline.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE

log = logging.getLogger("benchmark")

ROOT = Path(__file__).resolve().parent.parent
# Where the committed report lives, and where every run writes (git ignores it).
PUBLISHED = ROOT / "benchmarks"
DEFAULT_OUT = PUBLISHED / "out"
REPORT_FILES = ("results.md", "results.json")
DEFAULT_MIRROR = ROOT.parent / "shared" / "mnist"


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

    seconds: dict[str, list[float]] = field(default_factory=lambda: {key: [] for key in BY_KEY})
    max_rss_bytes: dict[str, list[int]] = field(default_factory=lambda: {key: [] for key in BY_KEY})
    # The 1-minute load average as each sample started: other work inflates timings.
    load_before: dict[str, list[float]] = field(default_factory=lambda: {key: [] for key in BY_KEY})
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


def outputs_hardlinked(repo: Path) -> bool:
    """Whether every output that ``repo``'s dvc.yaml declares is a hardlink (to the cache)."""
    return all((repo / out).stat().st_nlink > 1 for out in dvc_api.declared_outputs(repo))


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

    def command(self, scenario: Scenario, repo: Path) -> list[str]:
        """The words of ``scenario``'s command, run in ``repo``."""
        kind, *args = (word.format(scratch=self.scratch) for word in scenario.command)
        if kind == "stage":
            return dvc_api.stage_commands(repo)[args[0]]
        return [*({"dvc": self.dvc, "python": [sys.executable]}[kind]), *args]

    def run(self, scenario: Scenario, repo: Path, round_no: int) -> None:
        """Set up ``scenario`` in ``repo``, time it, and check what it did."""
        for step in scenario.setup:
            step(self, repo)
        env = self.pinned_env if scenario.pinned_env else None
        name = f"{scenario.key}-{round_no}"
        run = self.runner.run(self.command(scenario, repo), cwd=repo, name=name, env=env)
        self.results.add(scenario.key, run)
        if scenario.stages is not None:
            ran, expected = list(dvc_api.ran_stages(run.output)), list(scenario.stages)
            if ran != expected:
                self.results.warnings.append(
                    f"round {round_no}, {scenario.label}: dvc ran stages {ran or 'none'},"
                    f" expected {expected or 'none'}"
                )
        if scenario.cache_links:
            self.record_cache_links(repo, scenario.key, round_no)
        if scenario.lock_unchanged:
            self.check_lock_unchanged(repo, round_no)

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
                f"round {round_no}, {BY_KEY[key].label}: the outputs are not hardlinks to the cache"
            )

    def edit(self, repo: Path, key: str, value: str) -> None:
        """Set ``key`` in the clone's params.yaml, recording the change for the report."""
        old = set_param(repo / "params.yaml", key, value)
        if old == value:
            raise ValueError(
                f"{key} is already {value} in params.yaml: the scenario needs a change"
            )
        self.edits[key] = f"{old} -> {value}"

    def round(self, round_no: int, *, measure_stages: bool) -> None:
        """Every scenario once, clone by clone; with ``measure_stages``, each stage's peak
        RSS too."""
        for clone in CLONES:
            scenarios = [
                scenario
                for scenario in SCENARIOS
                if scenario.clone == clone and not (scenario.needs_pin and self.pinned_env is None)
            ]
            if clone is None:
                for scenario in scenarios:
                    self.run(scenario, ROOT, round_no)
                continue
            with self.clone(f"round{round_no}-{clone}") as repo:
                for scenario in scenarios:
                    self.run(scenario, repo, round_no)
                if measure_stages and clone == STAGE_MEMORY_CLONE:
                    default_params(self, repo)
                    self.results.stage_rss_bytes = self.stage_rss(repo)

    def stage_rss(self, repo: Path) -> dict[str, int]:
        """Run each stage's command directly in the reproduced ``repo``; its peak RSS."""
        return {
            stage: self.runner.run(cmd, cwd=repo, name=f"stage-{stage}").max_rss_bytes
            for stage, cmd in dvc_api.stage_commands(repo).items()
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
        return EXIT_USAGE
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
            results.skipped = {s.key: why for s in SCENARIOS if s.needs_pin}
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
            return EXIT_FAILED
        except ValueError as exc:  # a params edit that the repository no longer allows
            log.error("error: %s", exc)
            return EXIT_FAILED
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
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

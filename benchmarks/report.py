"""The benchmark's report: the machine and the commit measured, the medians, the ratios,
the targets and their verdicts, as JSON and as markdown."""

import contextlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.scenarios import BY_KEY, SCENARIOS

if TYPE_CHECKING:
    from benchmarks.run import Results

ROOT = Path(__file__).resolve().parent.parent

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

# Targets, checked against medians: ratios to the example or dvc status, or seconds.
COLD_VS_EXAMPLE = 1.0
STAGE_RSS_VS_EXAMPLE = 0.6
NOOP_VS_STATUS = 1.3
VISUALIZE_SECONDS = 1.5
FLOAT32_VS_EXAMPLE = 0.7


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


def summarize(results: "Results") -> dict:
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
    for scenario in SCENARIOS:
        key, label = scenario.key, scenario.label
        if key in report["skipped"]:
            lines.append(f"| {label} | skipped: {report['skipped'][key]} | | | |")
            continue
        samples = results["seconds"][key]
        rss = summary["median_max_rss_bytes"][key] / mb
        rss_note = " *" if scenario.dvc else ""
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
    for key in (k for k in BY_KEY if k in report["cache_links"]):
        links = report["cache_links"][key]
        lines.append(
            f"- {BY_KEY[key].label}: cache.type `{links['cache.type']}`, outputs hardlinked to"
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

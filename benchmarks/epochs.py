"""What recording each epoch costs the fit: ``python -m benchmarks.epochs`` (make bench-epochs).

Fits the estimator of params.yaml on the split of params.yaml, on the arrays that
fetch_and_scale wrote (run ``make repro`` first), round by round in one process, the
variants in turn within each round (each round starting with the next one), and reports
the median wall and CPU time of each and its ratio to the plain fit, and the median of
each round's ratio to that round's plain fit:

- ``plain``: ``model.fit`` alone, as before epochs were recorded;
- ``weights``: keeping the weights epoch by epoch (``epochs.scores: false``), with the
  loss logged in DVCLive's layout;
- ``scores``: the weights, and each epoch scored on the training and test rows on a
  thread while the next epoch trains, all logged, as the train stage does.

It also times, once, what DVCLive's own ``Live`` costs to start (importing it, and it
opening the DVC repository), which the stage does not pay: ``pipeline/formats.py`` writes
DVCLive's layout itself. The code paths are pinned as the stages pin them.
Timings mean something only on an otherwise idle machine.
"""

import argparse
import contextlib
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("plain", "weights", "scores")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.epochs", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


def timed(work) -> tuple[float, float]:
    """Wall and CPU seconds of ``work()`` (CPU: this process, every thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # the fit's printed losses
        work()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline import cpu

    cpu.pin_float_paths()
    # Imported only now, after the pin: they load numpy.
    from pipeline import epochs, formats, model, paths
    from pipeline.config import load_params
    from stages.train import available_memory, load_split

    files = paths.PROJECT
    params = load_params(files.params)
    sets = load_split(files, params, available=available_memory())
    rows = epochs.Rows(sets.X_train, sets.y_train, sets.X_test, sets.y_test)
    folder = Path(tempfile.mkdtemp(prefix="bench-epochs-"))

    start = time.perf_counter()
    from dvclive import Live

    Live(str(folder / "dvclive"), report=None, save_dvc_exp=False, dvcyaml=None).end()
    live_start = time.perf_counter() - start

    def plain():
        model.fit(sets.X_train, sets.y_train, params.train)

    def recorded(scored: bool):
        def work():
            log = formats.EpochLog(Path(tempfile.mkdtemp(dir=folder)))  # empty, as the stage's
            with epochs.Recorder(
                keep=params.epochs.keep,
                rows=rows if scored else None,
                log=lambda s: log.append(s.epoch, s.metrics()),
            ) as recorder:
                estimator = model.fit(sets.X_train, sets.y_train, params.train, on_epoch=recorder)
                recorder.finish(estimator)

        return work

    work = {"plain": plain, "weights": recorded(False), "scores": recorded(True)}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for round_no in range(1, args.repeats + 1):
        # each variant first in turn: no variant always follows the same one
        start = round_no % len(VARIANTS)
        for name in VARIANTS[start:] + VARIANTS[:start]:
            times[name].append(timed(work[name]))
        line = ", ".join(f"{n} {times[n][-1][0]:.2f} s" for n in VARIANTS)
        print(f"round {round_no}: {line}", flush=True)

    medians = {
        name: {
            "wall": statistics.median(w for w, _ in runs),
            "cpu": statistics.median(c for _, c in runs),
        }
        for name, runs in times.items()
    }
    # The same round's plain fit as the reference: the machine's drift from round to round
    # (here up to 20% for the same fit) cancels out of each ratio.
    paired = {
        name: statistics.median(w / p for (w, _), (p, _) in zip(runs, times["plain"], strict=True))
        for name, runs in times.items()
    }
    base = medians["plain"]
    print(f"\nmedians of {args.repeats} rounds, {cpu.why_not_pinnable_here() or 'pinned'}:")
    print("| variant | wall | vs. plain | CPU | vs. plain |\n|---|---:|---:|---:|---:|")
    for name in VARIANTS:
        m = medians[name]
        print(
            f"| {name} | {m['wall']:.2f} s | {m['wall'] / base['wall']:.3f}x"
            f" | {m['cpu']:.2f} s | {m['cpu'] / base['cpu']:.3f}x |"
        )
    print(f"DVCLive's own Live, to start (import, repository; not paid): {live_start:.2f} s")
    shutil.rmtree(folder)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"medians": medians, "paired": paired, "live_start": live_start, "times": times},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

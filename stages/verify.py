"""Verify a reproduction: the outputs against dvc.lock, the DVC cache against its own
hashes, and the example's published numbers.

``python -m stages.verify`` (``make verify``) reports, one line each:

- every output that dvc.lock records: identical to it, different, or missing;
- every object of the DVC cache that dvc.lock refers to, hashed again: DVC never checks
  its cache, so a corrupt object would be checked out and trained on as if it were
  good. A corrupt one is moved aside into ``.dvc/tmp/corrupt/``, so that the next
  ``dvc repro`` (or ``dvc checkout``) cannot use it;
- with the example's settings, the losses and accuracies against scikit-learn's
  published ones, within ``LOSS_TOLERANCE`` and ``ACCURACY_TOLERANCE``.

Where the CPU runs the pinned code paths (``stages/cpu.py``), a reproduction gives
dvc.lock's bytes. Elsewhere the last bits differ, and the published numbers within the
tolerances are the check. The exit code is 0 when the outputs are dvc.lock's bytes, or
(without ``--strict``) when they differ but the numbers hold; 1 otherwise, and always 1
for a corrupt cache object.
"""

import argparse
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from stages import formats, paths
from stages.config import Params, load_params
from stages.errors import UserError
from stages.paths import Layout
from stages.runner import run_stage

log = logging.getLogger(__name__)

# scikit-learn's example: MLPClassifier's arguments that it sets (the rest are defaults),
# on MNIST's own split, in float64; and what it printed.
EXAMPLE_ARGS = {
    "hidden_layer_sizes": (50,),
    "max_iter": 10,
    "alpha": 1e-4,
    "solver": "sgd",
    "tol": 1e-4,
    "random_state": 1,
    "learning_rate_init": 0.1,
}
EXAMPLE_TRAIN_SIZE = 60000
PUBLISHED_LOSSES = (
    0.32009978, 0.15347534, 0.11544755, 0.09279764, 0.07889367,
    0.07170497, 0.06282111, 0.05530788, 0.04960484, 0.04645355,
)  # fmt: skip
PUBLISHED_ACCURACY = {"train_accuracy": 0.986800, "test_accuracy": 0.970000}
# The losses were published to 8 decimals: half a unit of the 8th, with room for the
# last bits of another CPU. An accuracy may move by a few digits whose prediction was
# a tie to the last bit: 0.001 is 10 of the 10,000 test digits, 60 of the training ones.
LOSS_TOLERANCE = 1e-8
ACCURACY_TOLERANCE = 1e-3

CHUNK_BYTES = 1 << 20


def md5_of(path: Path) -> str:
    """The md5 of a file's bytes: what DVC 3 records for a file output."""
    digest = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def locked_outputs(lock: dict) -> dict[str, str]:
    """Every output path of a parsed dvc.lock, with its md5."""
    return {
        out["path"]: out["md5"]
        for stage in lock.get("stages", {}).values()
        for out in stage.get("outs", [])
    }


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    ok: bool
    text: str


def check_outputs(root: Path, locked: dict[str, str]) -> list[Check]:
    """Each locked output in the workspace under ``root``: identical, different or missing."""
    checks = []
    for name, expected in sorted(locked.items()):
        path = root / name
        if not path.is_file():
            checks.append(Check(False, f"missing    {name}"))
            continue
        actual = md5_of(path)
        if actual == expected:
            checks.append(Check(True, f"identical  {name}"))
        else:
            checks.append(Check(False, f"different  {name}: md5 {actual}, dvc.lock {expected}"))
    return checks


def check_cache(cache: Path, locked: dict[str, str], quarantine: Path) -> list[Check]:
    """Hash again each cache object that dvc.lock names; move each corrupt one aside."""
    checks, intact = [], 0
    for name, expected in sorted(locked.items()):
        obj = cache / expected[:2] / expected[2:]
        if not obj.is_file():
            continue  # not cached here (pulled on demand, or never pushed): nothing to trust
        actual = md5_of(obj)
        if actual == expected:
            intact += 1
            continue
        quarantine.mkdir(parents=True, exist_ok=True)
        aside = quarantine / f"{expected}.{time.strftime('%Y%m%dT%H%M%S')}"
        obj.replace(aside)
        checks.append(
            Check(
                False,
                f"corrupt    cache object of {name} ({obj}) holds md5 {actual}: moved to"
                f" {aside}; `dvc repro` rebuilds it",
            )
        )
    if not checks:
        checks.append(Check(True, f"intact     {intact} cache objects of dvc.lock, hashed again"))
    return checks


def is_example(params: Params) -> bool:
    """Whether ``params`` are scikit-learn's example settings, for which numbers are published."""
    from sklearn.neural_network import MLPClassifier

    expected = MLPClassifier(**EXAMPLE_ARGS).get_params()
    actual = params.train.estimator_kwargs()
    same_args = all(expected[key] == value for key, value in actual.items())
    return (
        same_args
        and params.data.train_size == EXAMPLE_TRAIN_SIZE
        and params.data.pixel_dtype == "float64"
    )


def check_numbers(losses: list[float], metrics: dict) -> list[Check]:
    """The losses and accuracies against the published ones, within the tolerances."""
    checks = []
    if len(losses) != len(PUBLISHED_LOSSES):
        checks.append(
            Check(False, f"losses: {len(losses)} iterations, published {len(PUBLISHED_LOSSES)}")
        )
    else:
        worst = max(abs(a - b) for a, b in zip(losses, PUBLISHED_LOSSES, strict=True))
        checks.append(
            Check(
                worst <= LOSS_TOLERANCE,
                f"losses: {len(losses)} iterations, largest difference from the published"
                f" {worst:.1e} (tolerance {LOSS_TOLERANCE:.0e})",
            )
        )
    for key, published in PUBLISHED_ACCURACY.items():
        value = metrics.get(key)
        ok = isinstance(value, float) and math.isclose(value, published, abs_tol=ACCURACY_TOLERANCE)
        checks.append(
            Check(ok, f"{key}: {value} (published {published:f}, tolerance {ACCURACY_TOLERANCE})")
        )
    return checks


def report(title: str, checks: list[Check]) -> bool:
    log.info("%s", title)
    for check in checks:
        log.info("  %s %s", "ok  " if check.ok else "FAIL", check.text)
    return all(check.ok for check in checks)


def verify(files: Layout, lock_path: Path, cache: Path, *, strict: bool) -> bool:
    """Run every check on the project ``files`` and report it; True if the reproduction holds."""
    root = files.root
    try:
        lock = YAML(typ="safe").load(lock_path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise UserError(f"{lock_path}: cannot read it ({exc.strerror})") from None
    locked = locked_outputs(lock)
    cache_ok = report("DVC cache:", check_cache(cache, locked, root / ".dvc" / "tmp" / "corrupt"))
    identical = report(f"outputs against {lock_path.name}:", check_outputs(root, locked))
    if identical:
        log.info("verdict: every output is dvc.lock's bytes")
        return cache_ok
    params = load_params(files.params)
    if not is_example(params):
        log.info(
            "verdict: outputs differ from dvc.lock, and no numbers are published for these params"
        )
        return False
    try:
        losses = formats.read_loss(files.loss_csv)[1]
        metrics = formats.read_metrics(files.metrics)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read the outputs' numbers: {exc}") from None
    numbers = report("the example's published numbers:", check_numbers(losses, metrics))
    if numbers and not strict:
        log.info(
            "verdict: outputs differ from dvc.lock in their bytes, numbers within tolerance"
            " (as expected where the CPU cannot run the pinned code paths)"
        )
        return cache_ok
    log.info(
        "verdict: outputs differ from dvc.lock%s", "" if numbers else ", and so do the numbers"
    )
    return False


def dvc_cache_dir(root: Path) -> Path:
    """Where this repository's DVC cache keeps file objects by md5."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return Path(repo.cache.local.path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.verify", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--lock",
        type=Path,
        default=paths.ROOT / "dvc.lock",
        help="the dvc.lock to compare with (default: the workspace's)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail unless every output is dvc.lock's bytes"
    )
    args = parser.parse_args(argv)
    if not verify(paths.PROJECT, args.lock, dvc_cache_dir(paths.ROOT), strict=args.strict):
        raise SystemExit(1)


if __name__ == "__main__":
    run_stage(main)

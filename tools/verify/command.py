"""The command line and its verdict: which checks run, and what their lines add up to."""

import argparse
import signal
import sys
from pathlib import Path

from pipeline import cpu, dvc_api, paths
from pipeline.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, stopped
from pipeline.paths import Layout
from tools.verify.cache import QUARANTINE, Cache, check_cache, dvc_cache
from tools.verify.lock import read_declared, read_lock, reconcile
from tools.verify.numbers import published_version, report_published_numbers
from tools.verify.report import BadInput, log, report
from tools.verify.workspace import check_outputs, lock_against_workspace


def bytes_verdict(files: Layout, cache_ok: bool, cache_note: str, *, numbered: bool) -> bool:
    """The verdict where every output is dvc.lock's bytes: the published numbers too, of
    the version that params.yaml describes, or a line saying that only the bytes count.
    ``numbered``: the outputs checked include loss.csv and metrics.json, which hold them."""
    if not numbered:
        log.info("verdict: every output is dvc.lock's bytes%s", cache_note)
        return cache_ok
    version, differences = published_version(files)
    if version is None:
        log.info(
            "verdict: every output is dvc.lock's bytes (no numbers are published for these"
            " params, so the bytes alone are checked: %s)%s",
            differences,
            cache_note,
        )
        return cache_ok
    failure = report_published_numbers(files, version)
    if failure is None:
        log.info(
            "verdict: every output is dvc.lock's bytes, and they hold the published numbers"
            " of %s%s",
            version.title,
            cache_note,
        )
        return cache_ok
    log.info(
        "verdict: every output is dvc.lock's bytes, but %s of %s%s",
        failure,
        version.title,
        cache_note,
    )
    return False


def verify(files: Layout, lock_path: Path, cache: Cache, *, strict: bool) -> bool:
    """Run every check on the project ``files`` and report it; True if the reproduction holds.

    The outputs are compared with ``lock_path``; the cache is checked against the
    workspace's dvc.lock, whose objects are the ones that ``dvc checkout`` would use (those
    of another lock, such as the committed one on a CPU whose bytes differ, may never have
    been made here).
    """
    root = files.root
    declared = read_declared(root / "dvc.yaml")
    outputs = reconcile(declared, read_lock(lock_path))
    if not outputs:
        raise BadInput(
            "dvc.yaml declares no output and dvc.lock records none: there is nothing to"
            " check, and checking nothing is no pass"
        )
    workspace_lock = root / "dvc.lock"
    if lock_path.resolve() == workspace_lock.resolve():
        cache_ok = report("DVC cache:", check_cache(cache, outputs))
        # After the cache's check: DVC's status deletes a corrupt object that it meets,
        # which the check reports and keeps aside.
        changed = lock_against_workspace(root, lock_path, outputs)
        if changed:
            report("what dvc.lock records against the workspace (DVC's status):", changed)
    else:
        changed = []
        cached = reconcile(declared, read_lock(workspace_lock))
        cache_ok = report("DVC cache, for the workspace's dvc.lock:", check_cache(cache, cached))
    within = (root.resolve(), cache.root.resolve())
    checks = check_outputs(root, outputs, within)
    report(f"outputs of dvc.yaml against {lock_path.name}:", checks)
    cache_note = "" if cache_ok else "; and the DVC cache fails its check (above)"
    failed = [check for check in checks if not check.ok]
    if changed:
        log.info(
            "verdict: dvc.lock no longer describes the workspace: %s (`dvc status` shows"
            " it; `dvc repro` runs what changed, or `git checkout` undoes the edit)%s",
            "; ".join(check.text.removeprefix("changed").strip() for check in changed),
            cache_note,
        )
        return False
    if not failed:
        holders = {files.loss_csv, files.metrics}
        numbered = holders <= {root / output.path for output in outputs}
        return bytes_verdict(files, cache_ok, cache_note, numbered=numbered)
    if any(check.label != "different" for check in failed):
        counts: dict[str, int] = {}
        for check in failed:
            counts[check.label] = counts.get(check.label, 0) + 1
        log.info(
            "verdict: %s of %d outputs: every output that dvc.yaml declares must be in the"
            " workspace and in dvc.lock (`dvc repro` writes both)%s",
            ", ".join(f"{n} {label}" for label, n in counts.items()),
            len(checks),
            cache_note,
        )
        return False
    reason = cpu.why_not_pinnable_here()
    if reason is None:
        log.info(
            "verdict: %d of %d outputs differ from dvc.lock on a CPU that runs the pinned"
            " code paths, where a reproduction gives dvc.lock's bytes%s",
            len(failed),
            len(checks),
            cache_note,
        )
        return False
    if strict:
        log.info(
            "verdict: %d of %d outputs differ from dvc.lock, and --strict requires its bytes"
            " (%s, so the pinned code paths cannot run here)%s",
            len(failed),
            len(checks),
            reason,
            cache_note,
        )
        return False
    version, differences = published_version(files)
    if version is None:
        log.info(
            "verdict: outputs differ from dvc.lock, and no numbers are published for these"
            " params (%s)%s",
            differences,
            cache_note,
        )
        return False
    failure = report_published_numbers(files, version)
    if failure is None:
        log.info(
            "verdict: outputs differ from dvc.lock in their bytes, numbers of %s within"
            " tolerance (as expected where the CPU cannot run the pinned code paths: %s)%s",
            version.title,
            reason,
            cache_note,
        )
        return cache_ok
    log.info("verdict: outputs differ from dvc.lock, and %s%s", failure, cache_note)
    return False


def verify_numbers(files: Layout) -> bool:
    """Only the published numbers of the outputs on disk, not their bytes, of the version
    that params.yaml describes: True if they hold."""
    version, differences = published_version(files)
    if version is None:
        raise BadInput(
            f"--numbers: no numbers are published for these params ({differences}); the"
            " default params.yaml is in git (`git checkout params.yaml`), and `make gallery`"
            " runs the gallery's version"
        )
    failure = report_published_numbers(files, version)
    if failure is None:
        log.info("verdict: the published numbers of %s hold, within tolerance", version.title)
        return True
    log.info("verdict: %s", failure)
    return False


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code: 0 the reproduction holds, 1 it does not,
    2 the input cannot be checked, 130 stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.verify",
        description=sys.modules[__package__].__doc__.split("\n\n")[0],
        epilog="exit status: 0 the reproduction holds, 1 it does not, 2 the input cannot be"
        " checked (one line says why)",
    )
    parser.add_argument(
        "--lock",
        type=Path,
        help="the dvc.lock to compare with (default: the workspace's)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--strict",
        action="store_true",
        help="fail unless every output is dvc.lock's bytes, even on a CPU that cannot run the"
        " pinned code paths",
    )
    mode.add_argument(
        "--numbers",
        action="store_true",
        help="check only the published numbers of the outputs on disk (of the version that"
        " params.yaml describes), not their"
        " bytes (for CPUs whose bytes legitimately differ)",
    )
    args = parser.parse_args(argv)
    if args.numbers and args.lock:
        parser.error("--numbers compares no bytes: it takes no --lock")
    files = paths.PROJECT
    try:
        if args.numbers:
            passed = verify_numbers(files)
        else:
            lock = args.lock or files.root / "dvc.lock"
            passed = verify(files, lock, dvc_cache(files.root), strict=args.strict)
    except (BadInput, dvc_api.DvcFileError) as exc:
        log.error("error: %s", exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        log.error(
            "stopped: verify did not finish; a corrupt object it moved is in the cache's %s/",
            QUARANTINE,
        )
        return stopped(signal.SIGINT)
    return EXIT_OK if passed else EXIT_FAILED

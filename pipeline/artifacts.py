"""Write artifacts all or none, and reproducibly.

A stage writes each of its outputs under a temporary name in the output's own folder
(``StagedOutputs.temp``) and renames them all into place only when every one is complete
(``all_or_none``), so that a crash, a full disk, Ctrl-C or SIGTERM never leaves a file
that looks like a result, nor a mix of new and missing ones. Writers here produce the
same bytes for the same content (no dates), because dvc.lock records every output's hash.

A temporary file is named ``.NAME.PID.RANDOM.tmp`` after its target and its writer's
process: what a ``kill -9`` leaves behind, the stage's next run removes
(``prepare_outputs``), and it leaves alone those of a writer that is still running.
"""

import contextlib
import glob
import io
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from pipeline import runner
from pipeline.errors import UserError

log = logging.getLogger(__name__)

# A fixed timestamp for the members of .npz files: numpy's own savez stamps the
# current time, which would change the file's hash on every run.
_ZIP_UNIX = 3  # the zip format's code for the system that made a member
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def temp_beside(target: Path) -> Path:
    """A new, empty temporary file in ``target``'s folder (created if need be), named
    ``.NAME.PID.RANDOM.tmp`` after ``target`` and this process.

    Its mode follows the umask, like any file the user creates: ``mkstemp`` would leave
    it readable by its owner alone, which a shared cache or output folder cannot use.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent
    )
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
    finally:
        os.close(fd)
    return Path(name)


def _writer_pid(temp: Path, target: Path) -> int | None:
    """The process named in a temporary file's name; None for a name without one (before
    names held it, they were ``.NAME.RANDOM.tmp``)."""
    middle = temp.name.removeprefix(f".{target.name}.").removesuffix(".tmp")
    pid, dot, _ = middle.partition(".")
    return int(pid) if dot and pid.isdecimal() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temporary files of ``target`` whose writers no longer run; return them.

    Those are what a killed writer leaves (``kill -9``, a crash, a power cut). Those of a
    writer that still runs, such as a concurrent run of the same stage, are left alone;
    this process's own count as stale, so call it before this process writes ``target``.
    Only processes on this machine are seen: a folder that writers on other machines
    share at the same time needs other means.
    """
    removed = []
    for temp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = _writer_pid(temp, target)
        if not temp.is_file() or (pid not in (None, os.getpid()) and _running(pid)):
            continue
        temp.unlink(missing_ok=True)
        removed.append(temp)
    return removed


def prepare_outputs(targets: list[Path]) -> None:
    """Before a stage's work, check that its outputs can be written, and remove the
    temporary files that killed runs left beside them.

    A ``UserError`` for a folder where an output file goes, a file where a folder goes,
    or a folder where this process cannot create files (permissions, an immutable
    folder, a read-only file system); it is found now, not after the work. Missing
    folders are created, as the writers would.
    """
    for target in targets:
        if target.is_dir():
            raise UserError(
                f"{target} is a folder, where this stage writes a file: move it away,"
                " then run again"
            )
    for target in {target.parent: target for target in targets}.values():
        folder = target.parent
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir():
            raise UserError(
                f"{existing} is a file, where this stage needs a folder: move it away,"
                " then run again"
            )
        try:
            temp_beside(target).unlink()
        except OSError as exc:
            raise UserError(
                f"cannot create files in {folder} ({exc.strerror}): make it a writable"
                " folder (check its permissions, `lsattr -d` and the file system), then run"
                " again"
            ) from None
    for target in targets:
        for temp in remove_stale_temps(target):
            log.info("removed %s, left by a run that was killed", temp)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it to ``target`` on success.

    On any exception, ``KeyboardInterrupt`` included, the temporary file is removed
    and ``target`` is left as it was.
    """
    tmp = temp_beside(Path(target))
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class StagedOutputs:
    """A stage's outputs, written under temporary names until ``commit`` renames them."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []
        self._placed: list[Path] = []

    def temp(self, target: Path) -> Path:
        """Where to write ``target``: a temporary file that becomes it on commit."""
        tmp = temp_beside(Path(target))
        self._staged.append((tmp, Path(target)))
        return tmp

    def commit(self) -> None:
        """Rename every output into place, with SIGINT and SIGTERM held off meanwhile.

        A stop that a finalizer swallowed earlier stops the commit before it starts; one
        that arrives during it is ignored (``runner.outputs_complete``): the stage's work
        is done once its outputs are in place. So no stop leaves some outputs renamed and
        others not, and none makes a stage that finished report that it wrote nothing.
        """
        with runner.stops_held():
            runner.raise_if_stopped()
            for tmp, target in self._staged:
                os.replace(tmp, target)
                self._placed.append(target)
            runner.outputs_complete()

    def discard(self) -> None:
        """Remove every temporary file, and every output already renamed into place."""
        for tmp, target in self._staged:
            tmp.unlink(missing_ok=True)
            if target in self._placed:
                target.unlink(missing_ok=True)


@contextlib.contextmanager
def all_or_none() -> Iterator[StagedOutputs]:
    """Yield a ``StagedOutputs``; commit it if the block completes, else discard it."""
    outputs = StagedOutputs()
    try:
        yield outputs
        outputs.commit()
    except BaseException:
        outputs.discard()
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8."""
    Path(path).write_text(text, encoding="utf-8")


def write_json(path: Path, data: Mapping) -> None:
    """Write ``data`` as indented JSON with sorted keys."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed, pickle-free .npz whose bytes depend on nothing else.

    Each member is written whole, its size known, in the plain zip format: the ZIP64
    records that streaming a member needs were written differently by Python 3.11.2 and
    3.11.7, and so were the archive's bytes. The creating system is set, not left to the
    platform (Windows would record another).
    """
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.create_system = _ZIP_UNIX
            archive.writestr(info, member.getbuffer())


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of a .npz written by ``write_npz``; never unpickles."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}

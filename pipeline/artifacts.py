"""Write artifacts all or none, and reproducibly.

A stage writes each of its outputs under a temporary name in the output's own folder
(``StagedOutputs.temp``) and renames them all into place only when every one is complete
(``all_or_none``), so that a crash, a full disk, Ctrl-C or SIGTERM never leaves a file
that looks like a result, nor a mix of new and missing ones. Writers here produce the
same bytes for the same content (no dates), because dvc.lock records every output's hash.

A temporary file is named ``.NAME.writing-RANDOM.tmp`` after its target, and its writer
holds an exclusive ``flock`` on it from the moment it exists until it is renamed or
removed. The kernel releases that lock when the writer ends, however it ends (``kill
-9``, a crash) and in whatever PID namespace or container it runs. So the one cleanup
rule (``remove_stale_temps``) is: remove a file of that exact name only once its lock can
be taken. A live writer's file, here or in another container sharing the folder, is
never removed, and a user's file is never touched: it does not have the name.
"""

import contextlib
import fcntl
import io
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import runner
from pipeline.errors import UserError

log = logging.getLogger(__name__)

# A fixed timestamp for the members of .npz files: numpy's own savez stamps the
# current time, which would change the file's hash on every run.
_ZIP_UNIX = 3  # the zip format's code for the system that made a member
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


# What precedes the random part of a temporary file's name (and of an earlier run's output
# folder, set aside while a stage writes a new one), and the random part itself
# (tempfile's: 8 of a-z, 0-9 and _).
_MARK = "writing-"
_ASIDE = "previous-"
_RANDOM = "[a-z0-9_]{8}"


@dataclass(frozen=True)
class LockedTemp:
    """A temporary file, and the descriptor through which its writer holds its lock."""

    path: Path
    fd: int

    def release(self) -> None:
        """Let the lock go: once the file is renamed into place, or removed."""
        os.close(self.fd)


def temp_beside(target: Path) -> LockedTemp:
    """A new, empty temporary file in ``target``'s folder (created if need be), named
    ``.NAME.writing-RANDOM.tmp`` after ``target``, locked by this process until
    ``release``.

    Its mode follows the umask, like any file the user creates: ``mkstemp`` would leave
    it readable by its owner alone, which a shared cache or output folder cannot use.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.{_MARK}", suffix=".tmp", dir=target.parent
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                break
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        # A cleaner took the file in the instant between its creation and the lock (it
        # could lock it, so it removed it): make another.
        os.close(fd)
    temp = LockedTemp(Path(name), fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
    except BaseException:
        temp.path.unlink(missing_ok=True)
        temp.release()
        raise
    return temp


def set_aside(folder: Path) -> LockedTemp:
    """Move ``folder`` to a new name beside it (``.NAME.previous-RANDOM.tmp``), locked by
    this process until ``release``: what a stage keeps of an earlier run's output folder
    while it writes a new one. The lock is taken on the folder itself before it moves, so
    that it is held from the moment the name exists; a cleaner removes such a folder only
    once no one holds it, as it removes the temporary files."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # an empty folder of a name that no one else gets, which the rename replaces
        name = tempfile.mkdtemp(prefix=f".{folder.name}.{_ASIDE}", suffix=".tmp", dir=folder.parent)
        os.rename(folder, name)
    except BaseException:
        os.close(fd)
        raise
    return LockedTemp(Path(name), fd)


def _stale(path: Path, *, folder: bool = False) -> bool:
    """Remove ``path`` if no writer holds its lock; True if it was removed.

    Opened without following a link and without blocking (a FIFO planted there), and
    checked on the open descriptor: only a regular file (a folder, where ``folder``: one
    that a stage set aside) is locked and removed, and only while the name still leads to
    what was locked.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # gone, a link, or not ours to open: left alone
    try:
        opened = os.fstat(fd)
        if not (stat.S_ISDIR if folder else stat.S_ISREG)(opened.st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a writer holds it: it still runs
        try:
            now = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
            return False
        if folder:
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return True
    finally:
        os.close(fd)


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temporary files of ``target`` that no writer holds, and the earlier
    output folders set aside that no stage holds (``set_aside``); return them.

    Those are what a killed writer leaves (``kill -9``, a crash, a power cut). Those of a
    writer that still runs, such as a concurrent run of the same stage in this or another
    PID namespace, are locked and left alone. Lock-based, so a folder shared over a
    network file system is as safe as its ``flock`` is (NFS maps it to its own locks).
    """
    pattern = re.compile(rf"\.{re.escape(target.name)}\.({_MARK}|{_ASIDE}){_RANDOM}\.tmp")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    found = [(name, pattern.fullmatch(name)) for name in sorted(names)]
    return [
        target.parent / name
        for name, match in found
        if match and _stale(target.parent / name, folder=match[1] == _ASIDE)
    ]


def check_folder(target: Path) -> None:
    """A ``UserError`` where something other than a folder, a link included, stands at
    ``target``, where a stage writes a folder."""
    if target.is_symlink() or target.exists() and not target.is_dir():
        raise UserError(
            f"{target} is not a folder, where this stage writes one: move it away, then run again"
        )


def prepare_outputs(targets: list[Path], *, folders: list[Path] = ()) -> None:
    """Before a stage's work, check that its outputs (``targets``, of which ``folders``
    are folders) can be written, and remove the temporary files that killed runs left
    beside them.

    A ``UserError`` for a folder where an output file goes, a file where a folder goes,
    or a folder where this process cannot create files (permissions, an immutable
    folder, a read-only file system); it is found now, not after the work. Missing
    folders are created, as the writers would.
    """
    for target in targets:
        if target in folders:
            check_folder(target)
        elif target.is_dir():
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
            probe = temp_beside(target)
            probe.path.unlink()
            probe.release()
        except OSError as exc:
            raise UserError(
                f"cannot create files in {folder} ({exc.strerror}): make it a writable"
                " folder (check its permissions, `lsattr -d` and the file system), then run"
                " again"
            ) from None
    for target in targets:
        for temp in remove_stale_temps(target):
            log.info("removed %s, left by a writer that no longer runs", temp)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it to ``target`` on success.

    On any exception, ``KeyboardInterrupt`` included, the temporary file is removed
    and ``target`` is left as it was.
    """
    tmp = temp_beside(Path(target))
    try:
        yield tmp.path
        os.replace(tmp.path, target)
    except BaseException:
        tmp.path.unlink(missing_ok=True)
        raise
    finally:
        tmp.release()


class StagedOutputs:
    """A stage's outputs, written under temporary names until ``commit`` renames them, and
    its output folders, whose earlier content is set aside until the stage completes or
    fails (``folder``)."""

    def __init__(self) -> None:
        self._staged: list[tuple[LockedTemp, Path]] = []
        self._placed: list[Path] = []
        self._folders: list[tuple[Path, LockedTemp | None]] = []

    def folder(self, target: Path) -> Path:
        """``target`` as a new, empty folder that this stage fills. What an earlier run left
        in it is set aside (``set_aside``): removed on commit, put back if the stage fails
        or is stopped, when the new folder is removed, so that no partial folder looks
        like a result and the earlier one is as it was. Files written into it through
        ``temp`` appear on commit; files written in place (the per-epoch log, as the fit
        goes) are progress until then. (Under DVC the folder is not there: DVC removes a
        stage's outputs before it runs it, and ``dvc checkout`` brings them back.)"""
        target = Path(target)
        check_folder(target)
        previous = set_aside(target) if target.exists() else None
        self._folders.append((target, previous))
        target.mkdir(parents=True, exist_ok=True)
        return target

    def temp(self, target: Path) -> Path:
        """Where to write ``target``: a temporary file that becomes it on commit."""
        tmp = temp_beside(Path(target))
        try:
            self._staged.append((tmp, Path(target)))
        except BaseException:  # a stop in between: this file would be no one's to remove
            tmp.path.unlink(missing_ok=True)
            tmp.release()
            raise
        return tmp.path

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
                os.replace(tmp.path, target)
                self._placed.append(target)
            runner.outputs_complete()
        for _, previous in self._folders:
            if previous is not None:
                # once unlocked, a later run's cleanup removes what this could not
                shutil.rmtree(previous.path, ignore_errors=True)
        self._release()

    def discard(self) -> None:
        """Remove every temporary file, every output already renamed into place, and the
        output folders."""
        for tmp, target in self._staged:
            tmp.path.unlink(missing_ok=True)
            if target in self._placed:
                target.unlink(missing_ok=True)
        for folder, previous in self._folders:
            shutil.rmtree(folder, ignore_errors=True)
            if previous is not None:
                with contextlib.suppress(OSError):  # else the next run's cleanup removes it
                    os.rename(previous.path, folder)
        self._release()

    def _release(self) -> None:
        held = [tmp for tmp, _ in self._staged] + [p for _, p in self._folders if p is not None]
        for tmp in held:
            with contextlib.suppress(OSError):
                tmp.release()
        self._staged = []
        self._folders = []


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

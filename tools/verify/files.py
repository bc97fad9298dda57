"""Reading and hashing a file safely: only a regular file, checked on the descriptor that
is read, never a FIFO or a device, and where asked only inside the given folders; the md5
that DVC 3 records for a file or a directory."""

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

CHUNK_BYTES = 1 << 20


class NotHashed(Exception):
    """Why a file was not hashed: the word of the report (missing, unreadable, not a
    file, outside) and the detail."""

    def __init__(self, label: str, detail: str = ""):
        super().__init__(label, detail)
        self.label = label
        self.detail = detail


class Resized(Exception):
    """A file whose size is not dvc.lock's: different, with no need to hash it."""

    def __init__(self, actual: int, locked: int):
        super().__init__(actual, locked)
        self.actual, self.locked = actual, locked


@contextlib.contextmanager
def open_regular(path: Path, within: tuple[Path, ...] = ()) -> Iterator[tuple[int, os.stat_result]]:
    """The open descriptor of the regular file ``path`` and its ``fstat``, checked on the
    descriptor itself, so that nothing swapped in between a check and the open is read:
    a FIFO or a device is never read (and opening one never blocks), and with ``within``
    the file that was opened must lie in one of those folders, whatever links led to it.
    ``NotHashed`` says why not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        if path.is_symlink():
            raise NotHashed(
                "missing", f"a symbolic link to {os.readlink(path)}, which is not there"
            ) from None
        raise NotHashed("missing") from None
    except OSError as exc:
        raise NotHashed("unreadable", exc.strerror) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotHashed("not a file", _file_kind(info.st_mode))
        if within:
            real = _opened_path(fd, path)
            if not any(real.is_relative_to(folder) for folder in within):
                raise NotHashed(
                    "outside", f"it leads to {real}, outside the project and its DVC cache"
                )
        yield fd, info
    finally:
        os.close(fd)


def _opened_path(fd: int, path: Path) -> Path:
    """Where the file open as ``fd`` is: the kernel's word on Linux, else ``path`` resolved."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return path.resolve()


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def digest(fd: int, path: Path) -> str:
    """The md5 of the bytes of ``path``, open as ``fd``."""
    md5 = hashlib.md5()
    while chunk := os.read(fd, CHUNK_BYTES):
        md5.update(chunk)
    return md5.hexdigest()


def md5_of(path: Path, within: tuple[Path, ...] = ()) -> str:
    """The md5 of a regular file's bytes: what DVC 3 records for a file output."""
    with open_regular(path, within) as (fd, _):
        return digest(fd, path)


def file_md5(path: Path, within: tuple[Path, ...] = (), size: int | None = None) -> str:
    """The md5 of the regular file ``path`` (through symbolic links that stay ``within``
    these folders, when given); ``NotHashed`` says why not. Where ``size`` (dvc.lock's)
    is given and the file has another, a ``Resized`` says so without reading it."""
    try:
        with open_regular(path, within) as (fd, info):
            if size is not None and info.st_size != size:
                raise Resized(info.st_size, size)
            return digest(fd, path)
    except OSError as exc:
        raise NotHashed("unreadable", exc.strerror) from None


def listing_bytes(entries: list[dict[str, str]]) -> bytes:
    """A directory's listing as DVC 3 writes it into its ``.dir`` object and hashes it."""
    ordered = sorted(entries, key=lambda entry: entry["relpath"])
    return json.dumps(ordered, sort_keys=True).encode("utf-8")


def directory_md5(path: Path, within: tuple[Path, ...]) -> str:
    """The hash that DVC 3 records for the directory output ``path``: ``<md5>.dir``."""
    entries = []
    for folder, _, names in os.walk(path):
        for name in names:
            file = Path(folder) / name
            relpath = file.relative_to(path).as_posix()
            try:
                entries.append({"md5": file_md5(file, within), "relpath": relpath})
            except NotHashed as why:
                raise NotHashed(why.label, f"{relpath}: {why.detail or why.label}") from None
    return hashlib.md5(listing_bytes(entries)).hexdigest() + ".dir"

"""Getting a data set's files: from the download cache, else from the first mirror that
delivers a verified copy.

Each file is checked against the sha256 of its decompressed content (``datasets``), and
decompression stops at the size the file has. A file from a local mirror is read where it
is; one from a URL goes through ``download.py`` into the data set's cache folder, and is
verified again on its next use. ``fetch`` gives the training and test splits.
"""

import errno
import gzip
import hashlib
import logging
import zlib
from pathlib import Path

from pipeline import idx
from pipeline.artifacts import atomic_path, remove_stale_temps
from pipeline.datasets import MNIST, DataFile, Dataset
from pipeline.download import DiskError, DownloadError, download
from pipeline.errors import UserError
from pipeline.settings import Settings

log = logging.getLogger(__name__)


class MirrorError(Exception):
    """One mirror could not deliver one file; the next mirror may."""


def decompress_verified(path: Path, file: DataFile) -> bytes:
    """The decompressed content of the gzip file ``path``, if it is ``file``'s.

    Decompression stops past ``file.content_bytes``: a file that holds more is not it.
    """
    max_bytes = file.content_bytes
    try:
        with gzip.open(path, "rb") as f:
            content = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise MirrorError("file not found") from None
    except EOFError:
        raise MirrorError("truncated gzip (the file ends before the gzip stream does)") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise MirrorError(f"not a valid gzip file ({exc})") from None
    except OSError as exc:
        raise MirrorError(f"cannot read it ({exc.strerror or exc})") from None
    if len(content) > max_bytes:
        raise MirrorError(f"decompresses to more than the {max_bytes} bytes this file has")
    actual = hashlib.sha256(content).hexdigest()
    if actual != file.sha256:
        raise MirrorError(
            f"checksum mismatch: expected sha256 {file.sha256} of the decompressed content,"
            f" got {actual}"
        )
    return content


def _fetch_url(url: str, cached: Path, file: DataFile, seconds: float) -> bytes:
    """Download ``url`` to ``cached`` (temporary file, verify, rename); return the content."""
    # A gzip of incompressible bytes is a little larger than they are.
    max_bytes = file.content_bytes
    max_download = max_bytes + max_bytes // 100 + 4096
    try:
        with atomic_path(cached) as tmp:
            download(url, tmp, max_bytes=max_download, seconds=seconds)
            return decompress_verified(tmp, file)
    except DownloadError as exc:
        raise MirrorError(str(exc)) from None
    except (DiskError, OSError) as exc:
        error = exc.error if isinstance(exc, DiskError) else exc
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"the disk is full: cannot write the download cache {cached.parent}"
                f" ({error.strerror}); free some space, or set MNIST_CACHE to a folder on"
                " another disk"
            ) from None
        raise UserError(
            f"cannot write to the download cache {cached.parent} ({error.strerror or error});"
            " set MNIST_CACHE to a writable folder"
        ) from None


def fetch_file(file: DataFile, dataset: Dataset, settings: Settings) -> bytes:
    """The verified, decompressed content of ``file``, from ``dataset``'s download cache
    or the first mirror that delivers it."""
    cached = settings.cache_dir(dataset) / file.name
    if cached.is_dir():
        raise UserError(
            f"the download cache holds a folder {cached} where a file belongs: remove it"
        )
    if cached.exists():
        try:
            return decompress_verified(cached, file)
        except MirrorError as exc:
            log.warning("cached %s is unusable (%s); fetching it again", cached, exc)
            cached.unlink()
    # What killed downloads left; a download under way holds its file's lock (artifacts).
    for temp in remove_stale_temps(cached):
        log.info("removed %s, left by a download that no longer runs", temp)
    failures = []
    for mirror in settings.mirrors(dataset):
        try:
            if mirror.folder is None:
                url = mirror.url(file.name)
                return _fetch_url(url, cached, file, settings.download_seconds)
            if not mirror.folder.is_dir():
                raise MirrorError("no such folder")
            return decompress_verified(mirror.folder / file.name, file)
        except MirrorError as exc:
            log.warning("%s from %s: %s", file.name, mirror, exc)
            failures.append(f"  {mirror}: {exc}")
    if not failures:
        why = (
            "MNIST_PUBLIC_MIRRORS is off"
            if dataset.mirrors
            else f"data/mnist.sha256 names a data set other than {MNIST.name.upper()},"
            " which no public mirror serves"
        )
        raise UserError(
            f"no mirror to get {file.name} from: {why}, and MNIST_MIRROR is not set."
            f" Set MNIST_MIRROR to a folder or URL that serves the data set's four files."
        )
    raise UserError(
        f"could not get a verified {file.name} from any mirror:\n"
        + "\n".join(failures)
        + "\nSet MNIST_MIRROR to a folder or URL that serves the data set's four files and run"
        " again."
    )


def fetch(dataset: Dataset, settings: Settings) -> tuple[idx.Split, idx.Split]:
    """``dataset``'s training and test splits, in the files' own order."""
    arrays = [idx.parse(fetch_file(file, dataset, settings), file.name) for file in dataset.files]
    names = [file.name for file in dataset.files]
    train = idx.to_split(arrays[0], arrays[1], names[0], names[1], dataset)
    test = idx.to_split(arrays[2], arrays[3], names[2], names[3], dataset)
    return train, test

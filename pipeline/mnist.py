"""The four LeCun MNIST files: where they come from, how they are verified, and IDX.

A mirror is a local folder (or a ``file://`` URL) or an http(s) URL that serves the four
files under their usual names. ``MNIST_MIRROR`` names one that is tried before the
public mirrors, which ``MNIST_PUBLIC_MIRRORS=off`` switches off. Each file is checked
against the SHA-256 of its *decompressed* content in ``data/mnist.sha256`` (mirrors
recompress, so the gzip bytes differ from mirror to mirror while the content must not),
and decompression stops at the size an MNIST file has, so a gzip bomb costs nothing.
Files fetched over the network go through ``download.py`` into a local cache, and are
only verified next time. The environment is read once, by ``Settings.from_environ`` at
the stage's entry point, and the settings are passed down.
"""

import errno
import gzip
import hashlib
import logging
import math
import re
import struct
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts import atomic_path, remove_stale_temps
from pipeline.download import DiskError, DownloadError, download, redact, user_cache_dir
from pipeline.errors import UserError

log = logging.getLogger(__name__)

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
IDX_UBYTE = 0x08

# The decompressed size of each file: an IDX header, then 60,000 or 10,000 digits.
# Data sets in MNIST's layout (Fashion-MNIST) have the same; nothing larger is read.
MAX_CONTENT_BYTES = {
    TRAIN_IMAGES: 16 + 60000 * 28 * 28,
    TRAIN_LABELS: 8 + 60000,
    TEST_IMAGES: 16 + 10000 * 28 * 28,
    TEST_LABELS: 8 + 10000,
}

PUBLIC_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
ON = {"1", "on", "yes", "true"}
OFF = {"0", "off", "no", "false"}
DOWNLOAD_SECONDS = 600  # one file's download, retries included; MNIST_DOWNLOAD_SECONDS
CACHE_NAME = "mnist-mlp"  # the download cache's folder in the user's cache folder
ABOUT_MIRRORS = "a folder, a file:// URL or an http(s)://host/path/ URL"


class MirrorError(Exception):
    """One mirror could not deliver one file; the next mirror may."""


@dataclass(frozen=True)
class Split:
    """The images (n, 28, 28) and labels (n,) of one IDX pair, both uint8."""

    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True, repr=False)
class Mirror:
    """A place that serves the four files under their usual names, as the user wrote it:
    a local ``folder``, or an http(s) URL (``folder`` None).

    Its ``str`` and ``repr`` are the redacted text: a URL's user part and query values
    are secrets, which no message, log or traceback may show.
    """

    given: str
    folder: Path | None = None

    def __str__(self) -> str:
        return redact(self.given)

    def __repr__(self) -> str:
        return f"Mirror({redact(self.given)!r})"

    def url(self, name: str) -> str:
        """The URL of ``name`` on this http(s) mirror: the file name goes at the end of the
        path, before any query string; the scheme is matched whatever its case."""
        parts = urllib.parse.urlsplit(self.given)
        path = parts.path.rstrip("/") + "/" + urllib.parse.quote(name)
        return urllib.parse.urlunsplit(parts._replace(scheme=parts.scheme.lower(), path=path))


def parse_mirror(text: str) -> Mirror:
    """The mirror that ``text`` names: a folder, a ``file://`` URL or an http(s) URL.

    Raises ``ValueError`` saying what is wrong with it, in words that never repeat the
    URL's secret parts: a URL that cannot work is refused here, before any download,
    rather than retried as if the network had failed.
    """
    scheme = text.partition(":")[0].lower()
    if scheme == "file":
        try:
            return Mirror(text, Path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path)))
        except ValueError:
            raise ValueError("not a valid file:// URL") from None
    if scheme not in ("http", "https"):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text):
            raise ValueError(f"unknown scheme {scheme!r}")
        return Mirror(text, Path(text).expanduser())
    if any(char.isspace() or not char.isprintable() for char in text):
        raise ValueError("a URL cannot hold spaces or control characters (write a space as %20)")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        # urllib's own words may quote the host part, user part included.
        raise ValueError("its host part cannot be read (check an IPv6 address's [ ])") from None
    if "@" in parts.path + parts.query + parts.fragment:
        # An unencoded /, ? or # in a password ends the host part early: the user name
        # would be taken for the host, and the password's tail sent to it.
        raise ValueError(
            "an @ after the host: write @ and / in a user name or password as %40 and %2F"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError("no host name after the //")
    return Mirror(text)


@dataclass(frozen=True)
class Settings:
    """What the environment says about getting the data: read once, by the stage's
    ``main`` (``from_environ``), and passed down, so that nothing below reads
    ``os.environ``.

    ``mirrors`` are tried in order; downloads are kept in ``cache_dir``; one file's
    download may take ``download_seconds``, retries included.
    """

    mirrors: tuple[Mirror, ...]
    cache_dir: Path
    download_seconds: float = DOWNLOAD_SECONDS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Settings":
        """The settings in ``environ`` (``os.environ`` at the entry point), checked.

        ``MNIST_MIRROR`` (if set) comes before the public mirrors, which
        ``MNIST_PUBLIC_MIRRORS=off`` switches off; ``MNIST_DOWNLOAD_SECONDS`` bounds one
        file's download; ``MNIST_CACHE``, else ``$XDG_CACHE_HOME/mnist-mlp``, else
        ``~/.cache/mnist-mlp``, holds the downloads. Raises one ``UserError`` with a line
        for each problem.
        """
        problems = []
        mirrors: list[Mirror] = []
        if "MNIST_CHECKSUMS" in environ:
            problems.append(
                "MNIST_CHECKSUMS is no longer read: write the checksums into data/mnist.sha256"
                " (which DVC tracks) instead, and unset MNIST_CHECKSUMS"
            )
        first = environ.get("MNIST_MIRROR", "").strip()
        if first:
            try:
                mirrors.append(parse_mirror(first))
            except ValueError as exc:
                problems.append(
                    f"MNIST_MIRROR={redact(first)}: {exc}; set it to {ABOUT_MIRRORS}"
                    " that serves the four MNIST files"
                )
        public = environ.get("MNIST_PUBLIC_MIRRORS", "").strip()
        if public and public.lower() not in ON | OFF:
            problems.append(f"MNIST_PUBLIC_MIRRORS={public}: expected on or off")
        elif public.lower() not in OFF:
            mirrors.extend(parse_mirror(url) for url in PUBLIC_MIRRORS)
        seconds_text = environ.get("MNIST_DOWNLOAD_SECONDS", "").strip()
        seconds = DOWNLOAD_SECONDS
        if seconds_text:
            try:
                seconds = float(seconds_text)
            except ValueError:
                seconds = math.nan
            if not seconds > 0:  # nan included
                problems.append(
                    f"MNIST_DOWNLOAD_SECONDS={seconds_text}: expected a positive number of seconds"
                )
        if problems:
            raise UserError("\n".join(problems))
        cache = environ.get("MNIST_CACHE")
        cache_dir = Path(cache) if cache else user_cache_dir(environ, CACHE_NAME)
        return cls(mirrors=tuple(mirrors), cache_dir=cache_dir, download_seconds=seconds)


def read_checksums(path: Path) -> dict[str, str]:
    """The sha256 of each file's decompressed content, from a ``sha256sum``-style file.

    That file (``data/mnist.sha256``) is the data set's identity: DVC tracks it, so a
    switch of data set reruns fetch_and_scale instead of passing unseen.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the data set's checksums ({exc.strerror})") from None
    sums = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and not line.startswith("#"):
            sums[fields[1].lstrip("*")] = fields[0].lower()
    missing = [name for name in FILES if name not in sums]
    if missing:
        raise UserError(f"{path} has no checksum for {', '.join(missing)}")
    return sums


def decompress_verified(path: Path, sha256: str, max_bytes: int) -> bytes:
    """The decompressed content of the gzip file ``path``, if its hash is ``sha256``.

    Decompression stops past ``max_bytes``: a file that holds more is not the file.
    """
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
    if actual != sha256:
        raise MirrorError(
            f"checksum mismatch: expected sha256 {sha256} of the decompressed content, got {actual}"
        )
    return content


def _fetch_url(url: str, cached: Path, sha256: str, max_bytes: int, seconds: float) -> bytes:
    """Download ``url`` to ``cached`` (temporary file, verify, rename); return the content."""
    # A gzip of incompressible bytes is a little larger than they are.
    max_download = max_bytes + max_bytes // 100 + 4096
    try:
        with atomic_path(cached) as tmp:
            download(url, tmp, max_bytes=max_download, seconds=seconds)
            return decompress_verified(tmp, sha256, max_bytes)
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


def fetch_file(name: str, sha256: str, settings: Settings) -> bytes:
    """The verified, decompressed content of ``name``, from the cache or the first good mirror."""
    max_bytes = MAX_CONTENT_BYTES[name]
    cache_dir = settings.cache_dir
    cached = cache_dir / name
    if cached.is_dir():
        raise UserError(
            f"the download cache holds a folder {cached} where a file belongs: remove it"
        )
    if cached.exists():
        try:
            return decompress_verified(cached, sha256, max_bytes)
        except MirrorError as exc:
            log.warning("cached %s is unusable (%s); fetching it again", cached, exc)
            cached.unlink()
    # What killed downloads left; a download under way holds its file's lock (artifacts).
    for temp in remove_stale_temps(cached):
        log.info("removed %s, left by a download that no longer runs", temp)
    failures = []
    for mirror in settings.mirrors:
        try:
            if mirror.folder is None:
                url = mirror.url(name)
                return _fetch_url(url, cached, sha256, max_bytes, settings.download_seconds)
            if not mirror.folder.is_dir():
                raise MirrorError("no such folder")
            return decompress_verified(mirror.folder / name, sha256, max_bytes)
        except MirrorError as exc:
            log.warning("%s from %s: %s", name, mirror, exc)
            failures.append(f"  {mirror}: {exc}")
    if not failures:
        raise UserError(
            f"no mirror to get {name} from: MNIST_PUBLIC_MIRRORS is off and MNIST_MIRROR"
            " is not set. Set MNIST_MIRROR to a folder or URL that serves the four MNIST files."
        )
    raise UserError(
        f"could not get a verified {name} from any mirror:\n"
        + "\n".join(failures)
        + "\nSet MNIST_MIRROR to a folder or URL that serves the four MNIST files and run again."
    )


def parse_idx(content: bytes, name: str) -> np.ndarray:
    """Parse IDX bytes of unsigned bytes into an array of the shape its header gives."""
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] != IDX_UBYTE:
        raise UserError(
            f"{name}: not an IDX file of unsigned bytes"
            f" (magic number {content[:4].hex() or 'missing'}, expected 000008xx)"
        )
    ndim = content[3]
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise UserError(
            f"{name}: IDX header cut short ({len(content)} bytes, expected {header_size})"
        )
    shape = struct.unpack(f">{ndim}I", content[4:header_size])
    expected = math.prod(shape)
    if len(content) - header_size != expected:
        raise UserError(
            f"{name}: IDX header says shape {shape} ({expected} bytes of data),"
            f" but the file holds {len(content) - header_size}"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def to_split(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> Split:
    """Check that ``images`` and ``labels`` form an MNIST split."""
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise UserError(f"{images_name}: expected images of shape (n, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise UserError(f"{labels_name}: expected a vector of labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise UserError(
            f"{images_name} holds {len(images)} images but {labels_name} {len(labels)} labels"
        )
    if len(labels) and labels.max() >= N_CLASSES:
        bad = int(np.argmax(labels >= N_CLASSES))
        raise UserError(f"{labels_name}: label {labels[bad]} at index {bad} is outside 0-9")
    return Split(images=images, labels=labels)


def load_idx(settings: Settings, checksums: dict[str, str]) -> tuple[Split, Split]:
    """The training and test splits, in the files' own order."""
    arrays = {name: parse_idx(fetch_file(name, checksums[name], settings), name) for name in FILES}
    train = to_split(arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS], TRAIN_IMAGES, TRAIN_LABELS)
    test = to_split(arrays[TEST_IMAGES], arrays[TEST_LABELS], TEST_IMAGES, TEST_LABELS)
    return train, test


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: the inverse of ``parse_idx``."""
    header = bytes([0, 0, IDX_UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def verify_arrays(split: Split, images_name: str, labels_name: str, checksums: dict[str, str]):
    """Check a split that came from elsewhere against the checksums of the IDX files."""
    for name, array in ((images_name, split.images), (labels_name, split.labels)):
        actual = hashlib.sha256(idx_bytes(array)).hexdigest()
        if actual != checksums[name]:
            raise UserError(
                f"the data differs from {name}: expected sha256 {checksums[name]}"
                f" of its IDX content, got {actual}"
            )

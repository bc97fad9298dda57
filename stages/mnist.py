"""Get the four LeCun MNIST files from a mirror, verify them, and parse IDX.

A mirror is a local folder or an http(s) URL that serves the four files under their
usual names. ``MNIST_MIRROR`` names one that is tried before the public mirrors.
Each file is checked against the pinned SHA-256 of its *decompressed* content (mirrors
recompress, so the gzip bytes differ from mirror to mirror while the content must not).
Files fetched over the network are kept in a local cache and only verified next time.
"""

import gzip
import hashlib
import http.client
import logging
import math
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.artifacts import atomic_path
from stages.errors import UserError

log = logging.getLogger(__name__)

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

PUBLIC_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
IDX_UBYTE = 0x08

TIMEOUT_SECONDS = 30
RETRIES = 3
BACKOFF_SECONDS = 1.0
CHUNK_BYTES = 1 << 16


class MirrorError(Exception):
    """One mirror could not deliver one file; the next mirror may."""


@dataclass(frozen=True)
class Split:
    """The images (n, 28, 28) and labels (n,) of one IDX pair, both uint8."""

    images: np.ndarray
    labels: np.ndarray


def mirrors_from_env() -> list[str]:
    """The mirrors to try in order: ``MNIST_MIRROR`` if set, then the public ones."""
    first = os.environ.get("MNIST_MIRROR", "").strip()
    return ([first] if first else []) + list(PUBLIC_MIRRORS)


def default_cache_dir() -> Path:
    """Where downloaded files are kept: ``MNIST_CACHE``, else the user's cache folder."""
    if os.environ.get("MNIST_CACHE"):
        return Path(os.environ["MNIST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-mlp"


def read_checksums(path: Path) -> dict[str, str]:
    """The sha256 of each file's decompressed content, from a ``sha256sum``-style file.

    That file (``data/mnist.sha256``) is the data set's identity: DVC tracks it, so a
    switch of data set reruns fetch_and_scale instead of passing unseen.
    """
    if "MNIST_CHECKSUMS" in os.environ:
        raise UserError(
            f"MNIST_CHECKSUMS is no longer read: write the checksums into {path}"
            " (which DVC tracks) instead, and unset MNIST_CHECKSUMS"
        )
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


def decompress_verified(path: Path, sha256: str) -> bytes:
    """Return the decompressed content of the gzip file ``path`` if its hash is ``sha256``."""
    try:
        content = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise MirrorError("file not found") from None
    except EOFError:
        raise MirrorError("truncated gzip (the file ends before the gzip stream does)") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise MirrorError(f"not a valid gzip file ({exc})") from None
    except OSError as exc:
        raise MirrorError(f"cannot read it ({exc.strerror or exc})") from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
        raise MirrorError(
            f"checksum mismatch: expected sha256 {sha256} of the decompressed content, got {actual}"
        )
    return content


def _is_url(mirror: str) -> bool:
    return mirror.startswith(("http://", "https://"))


def _stream_to(url: str, dest: Path) -> None:
    """Download ``url`` into ``dest``, with a progress bar on a terminal."""
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response, dest.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        if sys.stderr.isatty():
            from tqdm import tqdm

            # Named after the file, not ``dest``: that is the temporary file's random name.
            name = url.rsplit("/", 1)[-1]
            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name)
        else:
            log.info("downloading %s (%s bytes)", url, total or "unknown")
            bar = None
        try:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        if total is not None and out.tell() != total:
            # http.client ends a short body without an error; a dropped connection is a
            # network error like any other, so it is retried.
            raise ConnectionError(f"connection closed after {out.tell()} of {total} bytes")


def _download_with_retries(url: str, dest: Path) -> None:
    """``_stream_to`` with bounded retries and backoff on network errors and HTTP 5xx."""
    for attempt in range(RETRIES + 1):
        try:
            _stream_to(url, dest)
            return
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500:
                raise MirrorError(reason) from None
        except (urllib.error.URLError, OSError) as exc:
            inner = getattr(exc, "reason", exc)
            if isinstance(inner, socket.gaierror):
                # An unknown host (or no network at all) does not heal in seconds:
                # waiting would only delay the next mirror.
                raise MirrorError(f"cannot resolve the host ({inner.strerror})") from None
            if isinstance(inner, (socket.timeout, TimeoutError)):
                reason = f"timed out after {TIMEOUT_SECONDS} s"
            else:
                reason = str(getattr(inner, "strerror", None) or inner)
        except http.client.HTTPException as exc:
            # Not HTTP, or a reply that breaks off (a wrong port, a proxy in the way).
            reason = f"invalid HTTP response ({type(exc).__name__}: {str(exc).strip()})"
        if attempt == RETRIES:
            raise MirrorError(f"{reason} (after {RETRIES + 1} attempts)")
        wait = BACKOFF_SECONDS * 2**attempt
        log.warning("%s: %s; retrying in %.0f s", url, reason, wait)
        time.sleep(wait)


def _fetch_url(url: str, cached: Path, sha256: str) -> bytes:
    """Download ``url`` to ``cached`` (temporary file, verify, rename); return the content."""
    try:
        with atomic_path(cached) as tmp:
            _download_with_retries(url, tmp)
            return decompress_verified(tmp, sha256)
    except OSError as exc:
        # The download's own errors are MirrorErrors by now: this one is the cache folder's.
        raise UserError(
            f"cannot write to the download cache {cached.parent} ({exc.strerror or exc});"
            " set MNIST_CACHE to a writable folder"
        ) from None


def fetch_file(name: str, sha256: str, mirrors: list[str], cache_dir: Path) -> bytes:
    """The verified, decompressed content of ``name``, from the cache or the first good mirror."""
    cached = cache_dir / name
    if cached.exists():
        try:
            return decompress_verified(cached, sha256)
        except MirrorError as exc:
            log.warning("cached %s is unusable (%s); fetching it again", cached, exc)
            cached.unlink()
    failures = []
    for mirror in mirrors:
        try:
            if _is_url(mirror):
                return _fetch_url(mirror.rstrip("/") + "/" + name, cached, sha256)
            folder = Path(mirror).expanduser()
            if not folder.is_dir():
                raise MirrorError("no such folder")
            return decompress_verified(folder / name, sha256)
        except MirrorError as exc:
            log.warning("%s from %s: %s", name, mirror, exc)
            failures.append(f"  {mirror}: {exc}")
    raise UserError(
        f"could not get a verified {name} from any mirror:\n"
        + "\n".join(failures)
        + "\nSet MNIST_MIRROR to a folder or URL that serves the four MNIST files"
        " (for example MNIST_MIRROR=../shared/mnist) and run again."
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


def load_idx(mirrors: list[str], cache_dir: Path, checksums: dict[str, str]) -> tuple[Split, Split]:
    """The training and test splits, in the files' own order."""
    arrays = {
        name: parse_idx(fetch_file(name, checksums[name], mirrors, cache_dir), name)
        for name in FILES
    }
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

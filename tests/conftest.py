"""Fixtures: tiny synthetic MNIST mirrors, built here without the code under test."""

import gzip
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
N_TRAIN, N_TEST = 60, 20


def idx(array: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array (magic 0x0000 08 ndim, big-endian dimensions, data)."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@dataclass
class TinyMirror:
    """A folder serving the four files, its SHA256SUMS file and the arrays inside."""

    folder: Path
    checksums: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    def content(self, name: str) -> bytes:
        return gzip.decompress((self.folder / name).read_bytes())


def write_mirror(folder: Path, contents: dict[str, bytes]) -> Path:
    """Write gzip files of ``contents`` into ``folder``, with a SHA256SUMS beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        # mtime=0 so that the gzip bytes are the same on every run
        (folder / name).write_bytes(gzip.compress(content, mtime=0))
    sums = folder.parent / f"{folder.name}.SHA256SUMS"
    sums.write_text(
        "".join(f"{hashlib.sha256(c).hexdigest()}  {n}\n" for n, c in contents.items())
    )
    return sums


@pytest.fixture
def tiny_mirror(tmp_path) -> TinyMirror:
    """60 training and 20 test digits of random pixels, labels 0-9 in turn."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(N_TRAIN) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(N_TEST) % 10).astype(np.uint8),
    }
    contents = dict(zip(FILES, (idx(a) for a in arrays.values())))
    folder = tmp_path / "mirror"
    sums = write_mirror(folder, contents)
    return TinyMirror(folder=folder, checksums=sums, **arrays)


@pytest.fixture
def mnist_env(monkeypatch, tiny_mirror, tmp_path) -> TinyMirror:
    """Point MNIST_MIRROR, MNIST_CHECKSUMS and MNIST_CACHE at a tiny mirror and a fresh cache.

    The public mirrors are emptied, so that a failing test never reaches the network.
    """
    monkeypatch.setattr("stages.mnist.PUBLIC_MIRRORS", ())
    monkeypatch.setenv("MNIST_MIRROR", str(tiny_mirror.folder))
    monkeypatch.setenv("MNIST_CHECKSUMS", str(tiny_mirror.checksums))
    monkeypatch.setenv("MNIST_CACHE", str(tmp_path / "cache"))
    return tiny_mirror

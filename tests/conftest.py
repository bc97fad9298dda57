"""Fixtures: tiny synthetic MNIST mirrors, built here without the code under test, and
temporary git repositories holding a copy of the project for end-to-end runs."""

import functools
import gzip
import hashlib
import os
import shutil
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pipeline.paths import Layout
from pipeline.published import EXAMPLE_2017
from pipeline.settings import Settings
from stages import fetch_and_scale
from tests.local_http import LocalServer
from tests.project import Repo, hermetic_env, write_home

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
N_TRAIN, N_TEST = 60, 20

# scikit-learn's example "Visualization of MLP weights on MNIST" as published in 2017:
# the MLPClassifier arguments it sets (the rest are scikit-learn's defaults).
EXAMPLE_ARGS = EXAMPLE_2017.estimator_args


def idx(array: np.ndarray) -> bytes:
    """IDX bytes of a uint8 array (magic 0x0000 08 ndim, big-endian dimensions, data)."""
    return (
        bytes([0, 0, 8, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


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
    sums.write_text("".join(f"{hashlib.sha256(c).hexdigest()}  {n}\n" for n, c in contents.items()))
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
    contents = dict(zip(FILES, (idx(a) for a in arrays.values()), strict=True))
    folder = tmp_path / "mirror"
    sums = write_mirror(folder, contents)
    return TinyMirror(folder=folder, checksums=sums, **arrays)


@pytest.fixture
def mnist_env(monkeypatch, tiny_mirror, tmp_path) -> TinyMirror:
    """Point MNIST_MIRROR and MNIST_CACHE at a tiny mirror and a fresh cache.

    The public mirrors are off, so that a failing test never reaches the network.
    """
    monkeypatch.setenv("MNIST_PUBLIC_MIRRORS", "off")
    monkeypatch.setenv("MNIST_MIRROR", str(tiny_mirror.folder))
    monkeypatch.delenv("MNIST_CHECKSUMS", raising=False)
    monkeypatch.setenv("MNIST_CACHE", str(tmp_path / "cache"))
    return tiny_mirror


def pytest_collection_modifyitems(items):
    """The slow tests first, in their order: on two workers, a long test that starts last
    keeps the whole run waiting on it alone, while the short ones fill in around it."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# The settings that the project reads (README: Settings) and that DVC passes a stage: the
# caller's values never reach a test, which sets what it needs. (OPENBLAS_* and NPY_* stay:
# the stages override them, and a machine may need them for numpy itself.)
PROJECT_VARIABLES = ("MNIST_", "DVC_", "XDG_CACHE_HOME", "PYTHONHASHSEED")


@pytest.fixture(autouse=True, scope="session")
def hermetic_home(tmp_path_factory):
    """A HOME of the tests' own, with a git identity and nothing else, and none of the
    caller's own settings of the project.

    The tests then pass on a newcomer's machine or a CI runner with an empty HOME (where
    ``dvc exp run`` needs an identity to commit), and no setting of the machine's own
    git config (a signing key, hooks, another default branch), nor an ``XDG_CACHE_HOME``
    that a desktop sets, reaches them. The real data's mirror is read before, once
    (``real_mirror``).
    """
    real_mirror()
    home = write_home(tmp_path_factory.mktemp("home"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in hermetic_env(home).items():
            patch.setenv(name, value)
        for name in set(os.environ) - set(hermetic_env(home)):
            patch.delenv(name)
        for name in [name for name in os.environ if name.startswith(PROJECT_VARIABLES)]:
            patch.delenv(name)
        yield home


def repo_env(**extra: str) -> dict[str, str]:
    """The environment for commands in a ``Repo``: this Python first on PATH, no MNIST_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNIST_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONUNBUFFERED"] = "1"
    return env | extra


@functools.cache
def real_mirror() -> str | None:
    """The caller's MNIST_MIRROR, read once before the tests clear it, as an absolute
    path (or URL), if set: the real MNIST files."""
    mirror = os.environ.get("MNIST_MIRROR")
    if not mirror or mirror.startswith(("http://", "https://")):
        return mirror
    return str(Path(mirror).resolve())


def tiny_env(mirror: TinyMirror, cache: Path) -> dict[str, str]:
    """``repo_env`` with a tiny mirror and a download cache of its own."""
    return repo_env(MNIST_MIRROR=str(mirror.folder), MNIST_CACHE=str(cache))


def use_tiny_data(repo: "Repo", mirror: TinyMirror) -> None:
    """Switch ``repo`` to the tiny data set: its checksums, and train_size 60."""
    shutil.copyfile(mirror.checksums, repo.root / "data" / "mnist.sha256")
    repo.set_param("train_size", str(N_TRAIN))


@pytest.fixture
def tiny_repo(tmp_path, tiny_mirror) -> Repo:
    """A project repository set up for the tiny mirror (train_size 60), committed."""
    repo = Repo(tmp_path / "repo", tiny_env(tiny_mirror, tmp_path / "cache"))
    use_tiny_data(repo, tiny_mirror)
    repo.git("commit", "-qam", "tiny data")
    return repo


@pytest.fixture
def scaled_repo(tiny_repo, mnist_env) -> Repo:
    """``tiny_repo`` with fetch_and_scale's tiny arrays in place, where the commands of
    the later stages can run."""
    fetch_and_scale.run(Layout.under(tiny_repo.root), Settings.from_environ(os.environ))
    return tiny_repo


# The local HTTP server and the offline guard of the download tests


@pytest.fixture
def server():
    """A fresh ``LocalServer``; everything unrouted is a 404."""
    local = LocalServer()
    yield local
    local.close()


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def offline(monkeypatch):
    """No public mirror, no proxy for 127.0.0.1, and no other MNIST_* variable from the shell."""
    for name in [name for name in os.environ if name.startswith("MNIST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MNIST_PUBLIC_MIRRORS", "off")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The seconds each retry would have slept for; nothing sleeps."""
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept

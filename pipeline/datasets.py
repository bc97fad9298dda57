"""The data sets that fetch_and_scale reads, each described by one frozen record.

A ``Dataset`` is what pooch keeps in a registry and scikit-learn in its loaders'
``RemoteFileMetadata``: the four IDX files of MNIST's layout, each with the SHA-256 of its
*decompressed* content (mirrors recompress, so the gzip bytes differ from mirror to
mirror while the content must not) and its size, the public mirrors that serve them, and
the OpenML data set with the same digits. ``MNIST`` is the one this pipeline publishes.

``data/mnist.sha256``, which DVC tracks, chooses the data set: ``from_checksums`` gives
``MNIST`` for MNIST's checksums, and for any other four (Fashion-MNIST, say) a data set in
MNIST's layout that only ``MNIST_MIRROR`` can serve. Each data set's downloads are kept in
a cache folder of its own name, so that switching between two never evicts the other.

This module imports nothing but the standard library and ``pipeline.errors``, so that
reading a record costs nothing. ``content_bytes`` is the size of each MNIST file's
content, exact for ``MNIST``; for another data set it is the most that is read, and its
files may be smaller (``n_train`` is then a bound, which only OpenML's copy of MNIST uses).
"""

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.errors import UserError

SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DataFile:
    """One gzip'd IDX file: its name on a mirror, the sha256 of its decompressed content,
    and that content's size in bytes (an IDX header, then the digits): nothing larger is
    read, so a gzip bomb costs nothing."""

    name: str
    sha256: str
    content_bytes: int


@dataclass(frozen=True)
class OpenMLData:
    """The same digits as an OpenML data set, for ``data.source: openml``."""

    name: str
    version: int


@dataclass(frozen=True)
class Dataset:
    """A data set in MNIST's layout: a training pair and a test pair of IDX files.

    ``name`` names its download cache folder; ``mirrors`` are the public URLs that serve
    the four files under their names (tried after ``MNIST_MIRROR``); ``openml`` is the
    same data on OpenML, if there is one.
    """

    name: str
    train_images: DataFile
    train_labels: DataFile
    test_images: DataFile
    test_labels: DataFile
    mirrors: tuple[str, ...] = ()
    openml: OpenMLData | None = None
    image_shape: tuple[int, int] = (28, 28)
    n_classes: int = 10

    @property
    def files(self) -> tuple[DataFile, DataFile, DataFile, DataFile]:
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)

    @property
    def n_train(self) -> int:
        return _rows(self.train_labels)

    def checksums(self) -> dict[str, str]:
        """``{file name: sha256}``, as ``data/mnist.sha256`` lists them."""
        return {file.name: file.sha256 for file in self.files}


def _rows(labels: DataFile) -> int:
    """The number of digits in an IDX label file of ``labels.content_bytes``."""
    return labels.content_bytes - 8  # magic number and one dimension


def _idx_file(name: str, sha256: str, digits: int, image_bytes: int = 0) -> DataFile:
    """An IDX file of ``digits`` labels (8-byte header) or, with ``image_bytes``, images."""
    if image_bytes:
        return DataFile(name, sha256, 16 + digits * image_bytes)
    return DataFile(name, sha256, 8 + digits)


MNIST = Dataset(
    name="mnist",
    train_images=_idx_file(
        "train-images-idx3-ubyte.gz",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        60000,
        28 * 28,
    ),
    train_labels=_idx_file(
        "train-labels-idx1-ubyte.gz",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60000,
    ),
    test_images=_idx_file(
        "t10k-images-idx3-ubyte.gz",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        10000,
        28 * 28,
    ),
    test_labels=_idx_file(
        "t10k-labels-idx1-ubyte.gz",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10000,
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    openml=OpenMLData("mnist_784", 1),
)


def with_checksums(sums: dict[str, str]) -> Dataset:
    """The data set whose four files have ``sums``: ``MNIST`` for MNIST's, else one in
    MNIST's layout and sizes, with no public mirror and no OpenML copy, whose cache folder
    is named by its checksums (``sha256-`` and 16 hex digits)."""
    if sums == MNIST.checksums():
        return MNIST
    listing = "".join(f"{sums[file.name]}  {file.name}\n" for file in MNIST.files)
    key = hashlib.sha256(listing.encode()).hexdigest()[:16]
    return replace(
        MNIST,
        name=f"sha256-{key}",
        train_images=replace(MNIST.train_images, sha256=sums[MNIST.train_images.name]),
        train_labels=replace(MNIST.train_labels, sha256=sums[MNIST.train_labels.name]),
        test_images=replace(MNIST.test_images, sha256=sums[MNIST.test_images.name]),
        test_labels=replace(MNIST.test_labels, sha256=sums[MNIST.test_labels.name]),
        mirrors=(),
        openml=None,
    )


def read_checksums(path: Path) -> dict[str, str]:
    """The sha256 of each file's decompressed content, from a ``sha256sum``-style file:
    lines of ``SHA256  NAME``, ``#`` comments, other names ignored. Raises ``UserError``
    if it cannot be read, lacks one of the four files, holds a checksum that is not 64
    hex digits, or two that differ for one file (a merge's leftover, say)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the data set's checksums ({exc.strerror})") from None
    except ValueError:
        raise UserError(f"{path}: cannot read the data set's checksums (not UTF-8)") from None
    wanted = {file.name for file in MNIST.files}
    sums: dict[str, str] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if len(fields) != 2 or line.startswith("#"):
            continue
        digest, name = fields[0].lower(), fields[1].lstrip("*")
        if name not in wanted:
            continue
        if not SHA256_HEX.fullmatch(digest):
            problems.append(f"line {number}: {digest[:70]!r} is not a sha256 (64 hex digits)")
        elif sums.setdefault(name, digest) != digest:
            problems.append(f"line {number}: a second, different checksum for {name}")
    if problems:
        raise UserError(f"{path}: " + "; ".join(problems))
    missing = [file.name for file in MNIST.files if file.name not in sums]
    if missing:
        raise UserError(f"{path} has no checksum for {', '.join(missing)}")
    return {file.name: sums[file.name] for file in MNIST.files}


def from_checksums(path: Path) -> Dataset:
    """The data set that ``path`` (``data/mnist.sha256``, the data set's identity) names."""
    return with_checksums(read_checksums(path))

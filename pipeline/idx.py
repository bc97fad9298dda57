"""The IDX format of LeCun's MNIST files: a magic number, the dimensions, then the bytes.

``parse`` reads the unsigned-byte IDX content of one file into an array, ``encode`` is its
inverse, ``to_split`` checks that an images file and a labels file form one split of a
data set, and ``verify_arrays`` checks arrays that came from elsewhere (OpenML) against
the checksums of the IDX files they should equal.
"""

import hashlib
import math
import struct
from dataclasses import dataclass

import numpy as np

from pipeline.datasets import DataFile, Dataset
from pipeline.errors import UserError

UBYTE = 0x08  # the type code of unsigned bytes, the only one MNIST's layout uses


@dataclass(frozen=True)
class Split:
    """The images (n, 28, 28) and labels (n,) of one IDX pair, both uint8."""

    images: np.ndarray
    labels: np.ndarray


def parse(content: bytes, name: str) -> np.ndarray:
    """Parse IDX bytes of unsigned bytes into an array of the shape its header gives."""
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] != UBYTE:
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


def encode(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: the inverse of ``parse``."""
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def to_split(
    images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str, dataset: Dataset
) -> Split:
    """Check that ``images`` and ``labels`` form a split of ``dataset``."""
    shape = dataset.image_shape
    if images.ndim != 3 or images.shape[1:] != shape:
        raise UserError(
            f"{images_name}: expected images of shape (n, {shape[0]}, {shape[1]}),"
            f" got {images.shape}"
        )
    if labels.ndim != 1:
        raise UserError(f"{labels_name}: expected a vector of labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise UserError(
            f"{images_name} holds {len(images)} images but {labels_name} {len(labels)} labels"
        )
    if len(labels) and labels.max() >= dataset.n_classes:
        bad = int(np.argmax(labels >= dataset.n_classes))
        raise UserError(
            f"{labels_name}: label {labels[bad]} at index {bad} is outside"
            f" 0-{dataset.n_classes - 1}"
        )
    return Split(images=images, labels=labels)


def verify_arrays(split: Split, images: DataFile, labels: DataFile) -> None:
    """Check a split that came from elsewhere against the checksums of its IDX files."""
    for file, array in ((images, split.images), (labels, split.labels)):
        actual = hashlib.sha256(encode(array)).hexdigest()
        if actual != file.sha256:
            raise UserError(
                f"the data differs from {file.name}: expected sha256 {file.sha256}"
                f" of its IDX content, got {actual}"
            )

"""The arrays that fetch_and_scale writes and train and visualize read: ``images.npy`` (one
flattened image a row) and ``labels.npy`` (uint8), written by ``write_images``, from the
rows fetch_and_scale scales a chunk at a time, and ``write_labels``; read by
``read_array``. A module of their own, apart from ``pipeline/formats.py`` (train's
outputs): fetch_and_scale depends on this one alone, so that an edit of train's formats
does not rerun it and hash its 439 MB again.
"""

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pipeline.errors import UserError


def write_images(
    path: Path, shape: tuple[int, int], dtype: str, chunks: Iterable[np.ndarray]
) -> None:
    """An .npy of ``shape`` and ``dtype`` from ``chunks`` of its rows, in order, written as
    they come: the bytes of ``np.save`` of their concatenation, which is never held whole."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": shape,
    }
    rows = 0
    with path.open("wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for chunk in chunks:
            if chunk.dtype != np.dtype(dtype) or chunk.shape[1:] != shape[1:]:
                raise ValueError(f"a chunk of {chunk.dtype} {chunk.shape} in {dtype} {shape}")
            rows += len(chunk)
            out.write(np.ascontiguousarray(chunk).data)
    if rows != shape[0]:
        raise ValueError(f"{rows} rows written for a shape of {shape}")


def write_labels(path: Path, labels: np.ndarray) -> None:
    """The labels as one uint8 .npy."""
    with path.open("wb") as out:
        np.save(out, labels.astype(np.uint8))


def read_array(path: Path, **kwargs) -> np.ndarray:
    """An array that fetch_and_scale wrote, never unpickled; one message if it is not one."""
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except FileNotFoundError:
        raise UserError(f"{path} not found: run `dvc repro` to make it") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(
            f"{path} is not an array that fetch_and_scale wrote ({exc}):"
            " run `dvc repro --force fetch_and_scale`"
        ) from None

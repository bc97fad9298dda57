"""MNIST from OpenML (``mnist_784``), the loader of scikit-learn's example.

The result is checked against the same checksums as the IDX files (``data/mnist.sha256``), so
``data.source: openml`` gives byte-identical arrays and switching sources does not
change what train sees.
"""

import http.client
import logging
import socket
import urllib.error
from pathlib import Path

import numpy as np

from pipeline import download, mnist
from pipeline.errors import UserError

log = logging.getLogger(__name__)

DATASET = "mnist_784"
VERSION = 1
N_TRAIN = 60000


def load_openml(cache_dir: Path, checksums: dict[str, str]) -> tuple[mnist.Split, mnist.Split]:
    """The training and test splits of ``mnist_784``, as uint8 arrays in MNIST's order,
    checked against ``checksums`` of the IDX files."""
    from sklearn.datasets import fetch_openml
    from sklearn.externals._arff import ArffException

    # fetch_openml has no timeout argument, and without one a server that stops sending
    # hangs the stage for good: its sockets take the default timeout, set for the call.
    default_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(download.TIMEOUT_SECONDS)
    try:
        bunch = fetch_openml(
            DATASET,
            version=VERSION,
            as_frame=False,
            parser="liac-arff",
            data_home=cache_dir / "openml",
        )
    # Besides network and data errors, fetch_openml lets through an EOFError for a gzip
    # cut short, an HTTPException for a reply that is not HTTP and the ARFF parser's own.
    except (
        urllib.error.URLError,
        OSError,
        ValueError,
        EOFError,
        http.client.HTTPException,
        ArffException,
    ) as exc:
        raise UserError(
            f"could not fetch {DATASET} (version {VERSION}) from OpenML:"
            f" {type(exc).__name__}: {str(exc).strip().rstrip('.')};"
            " use data.source: idx with MNIST_MIRROR for an offline copy"
        ) from None
    finally:
        socket.setdefaulttimeout(default_timeout)
    pixels, labels = np.asarray(bunch.data), np.asarray(bunch.target)
    n_rows = len(pixels)
    if pixels.shape[1:] != (784,) or not np.array_equal(pixels, np.round(pixels)):
        raise UserError(f"OpenML {DATASET}: expected whole pixel values in 784 columns")
    images = pixels.astype(np.uint8).reshape(n_rows, *mnist.IMAGE_SHAPE)
    try:
        labels = labels.astype(np.uint8)
    except ValueError:
        raise UserError(
            f"OpenML {DATASET}: expected digit labels, got {np.unique(labels)[:10]}"
        ) from None
    train = mnist.Split(images=images[:N_TRAIN], labels=labels[:N_TRAIN])
    test = mnist.Split(images=images[N_TRAIN:], labels=labels[N_TRAIN:])
    mnist.verify_arrays(train, mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS, checksums)
    mnist.verify_arrays(test, mnist.TEST_IMAGES, mnist.TEST_LABELS, checksums)
    return train, test

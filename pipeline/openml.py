"""MNIST from OpenML (``mnist_784``), the loader of scikit-learn's example.

The result is checked against the same checksums as the IDX files (``datasets.MNIST``), so
``data.source: openml`` gives byte-identical arrays and switching sources does not
change what train sees.
"""

import http.client
import logging
import socket
import urllib.error
from pathlib import Path

import numpy as np

from pipeline import download, idx
from pipeline.datasets import Dataset
from pipeline.errors import UserError, one_line

log = logging.getLogger(__name__)


def load_openml(dataset: Dataset, cache_root: Path) -> tuple[idx.Split, idx.Split]:
    """The training and test splits of ``dataset``'s OpenML copy, as uint8 arrays in the
    IDX files' order, checked against the IDX files' checksums. scikit-learn keeps its
    download in ``cache_root/openml``, keyed by OpenML's own data id."""
    from sklearn.datasets import fetch_openml
    from sklearn.externals._arff import ArffException

    if dataset.openml is None:
        raise UserError(
            "data.source: openml serves MNIST only, and data/mnist.sha256 names another"
            " data set: use data.source: idx with MNIST_MIRROR"
        )
    name, version = dataset.openml.name, dataset.openml.version

    # fetch_openml has no timeout argument, and without one a server that stops sending
    # hangs the stage for good: its sockets take the default timeout, set for the call.
    default_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(download.TIMEOUT_SECONDS)
    try:
        bunch = fetch_openml(
            name,
            version=version,
            as_frame=False,
            parser="liac-arff",
            data_home=cache_root / "openml",
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
            f"could not fetch {name} (version {version}) from OpenML:"
            f" {type(exc).__name__}: {one_line(str(exc), 600).rstrip('.')};"
            " use data.source: idx with MNIST_MIRROR for an offline copy"
        ) from None
    finally:
        socket.setdefaulttimeout(default_timeout)
    pixels, labels = np.asarray(bunch.data), np.asarray(bunch.target)
    n_rows = len(pixels)
    if pixels.shape[1:] != (784,) or not np.array_equal(pixels, np.round(pixels)):
        raise UserError(f"OpenML {name}: expected whole pixel values in 784 columns")
    images = pixels.astype(np.uint8).reshape(n_rows, *dataset.image_shape)
    try:
        labels = labels.astype(np.uint8)
    except ValueError:
        raise UserError(
            f"OpenML {name}: expected digit labels, got {np.unique(labels)[:10]}"
        ) from None
    n_train = dataset.n_train
    train = idx.Split(images=images[:n_train], labels=labels[:n_train])
    test = idx.Split(images=images[n_train:], labels=labels[n_train:])
    idx.verify_arrays(train, dataset.train_images, dataset.train_labels)
    idx.verify_arrays(test, dataset.test_images, dataset.test_labels)
    return train, test

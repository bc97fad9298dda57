"""
=====================================
Visualization of MLP weights on MNIST
=====================================

scikit-learn's example as published in 2017, as one script: the reference that
``benchmarks/run.py`` times the pipeline against. Only three things differ from the
example. MLPClassifier's arguments come from their one home,
``pipeline/published.py``'s ``EXAMPLE_2017``, the record that verify checks too. Its loader
(``fetch_mldata("MNIST original")``, long gone) is swapped for the four gzip IDX files
of the folder ``MNIST_MIRROR`` (the same local data the pipeline reads), in the order
``fetch_mldata`` gave: 60,000 training digits, then 10,000 test digits. And the figure
is saved to a PNG (``--png``, else a temporary file) instead of ``plt.show()``.

Run from the project root: ``MNIST_MIRROR=../shared/mnist python -m benchmarks.example``.
"""

import argparse
import gzip
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: the figure goes to a file

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from pipeline.published import EXAMPLE_2017  # noqa: E402


def read_idx(path: Path, header_bytes: int) -> np.ndarray:
    """The uint8 payload of a gzip IDX file, after its header."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header_bytes)


def fetch_mnist(mirror: Path) -> tuple[np.ndarray, np.ndarray]:
    """``mnist.data`` (70000 x 784 uint8) and ``mnist.target``, training digits first."""
    images = [read_idx(mirror / f"{part}-images-idx3-ubyte.gz", 16) for part in ("train", "t10k")]
    labels = [read_idx(mirror / f"{part}-labels-idx1-ubyte.gz", 8) for part in ("train", "t10k")]
    return np.concatenate(images).reshape(-1, 28 * 28), np.concatenate(labels)


parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[1])
parser.add_argument("--png", type=Path, help="where to save the figure (default: a temporary file)")
args = parser.parse_args()
mirror = Path(os.environ.get("MNIST_MIRROR", Path(__file__).resolve().parents[2] / "shared/mnist"))

# From here on, the example as published (print(__doc__) omitted), but for the loader
# and the last line.
data, target = fetch_mnist(mirror)

X, y = data / 255.0, target
# The example's split as the record spells it: the first train_size rows, unshuffled.
assert EXAMPLE_2017.split == {
    "train_size": 60000,
    "test_size": None,
    "shuffle": False,
    "stratify": False,
}
X_train, X_test = X[:60000], X[60000:]
y_train, y_test = y[:60000], y[60000:]

mlp = MLPClassifier(verbose=10, **EXAMPLE_2017.estimator_args)

mlp.fit(X_train, y_train)
print("Training set score: %f" % mlp.score(X_train, y_train))
print("Test set score: %f" % mlp.score(X_test, y_test))

fig, axes = plt.subplots(4, 4)
# use global min / max to ensure all weights are shown on the same scale
vmin, vmax = mlp.coefs_[0].min(), mlp.coefs_[0].max()
for coef, ax in zip(mlp.coefs_[0].T, axes.ravel()):
    ax.matshow(coef.reshape(28, 28), cmap=plt.cm.gray, vmin=0.5 * vmin, vmax=0.5 * vmax)
    ax.set_xticks(())
    ax.set_yticks(())

if args.png:
    fig.savefig(args.png)
else:
    with tempfile.NamedTemporaryFile(suffix=".png") as png:
        fig.savefig(png.name)

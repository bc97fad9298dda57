"""Stage visualize: the first layer's weights, the loss curve and the misclassified digits.

Reads params ``visualize``, ``outputs/weights.npz`` (pickle-free: nothing here is ever
unpickled), ``outputs/loss.csv``, ``outputs/predictions.csv`` and the test images of
``data/images.npy`` (memory-mapped); writes ``outputs/weights.png``, ``outputs/loss.png``
and ``outputs/misclassified.png``, all or none. A rerun writes the same bytes: the PNGs
carry no date or version.
"""

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pipeline import formats, model, paths
from pipeline.artifacts import all_or_none
from pipeline.config import VisualizeParams, load_params
from pipeline.errors import UserError
from pipeline.paths import Layout
from pipeline.runner import refuse_direct_run

# Written into every PNG by default; dropped so that reruns give identical bytes.
_PNG_METADATA = {"Software": None}
# Pixels between digits in the misclassified grid, room for each digit's label.
MOSAIC_GAP = 12
# The misclassified grid's layout, in inches: a digit's cell (with its label), the
# title's line above the grid (the first row's labels have their room inside the grid),
# and the margin above the title and below the grid.
MOSAIC_CELL_INCHES = 0.8
MOSAIC_TITLE_INCHES = 0.2
MOSAIC_MARGIN_INCHES = 0.08


def weight_grid(weights: np.ndarray, params: VisualizeParams) -> Figure:
    """Draw the input weights of the first rows x cols first-layer units, one image each.

    All images share one gray scale, ``range_factor`` times the global minimum and
    maximum of ``weights`` (n_features, n_units), as in scikit-learn's example. The grid
    fits the layer: ``config`` checks it against ``model.drawn_units``.
    """
    n_features = weights.shape[0]
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise UserError(f"first-layer weights have {n_features} inputs, not a square image")
    vmin, vmax = weights.min(), weights.max()
    fig = Figure(figsize=(6.4, 6.4 * params.rows / params.cols))
    axes = fig.subplots(params.rows, params.cols, squeeze=False)
    # zip stops at the grid's last cell: the layer may have more units than cells.
    for coef, ax in zip(weights.T, axes.ravel(), strict=False):
        ax.matshow(
            coef.reshape(side, side),
            cmap="gray",
            vmin=params.range_factor * vmin,
            vmax=params.range_factor * vmax,
        )
        ax.set_xticks(())
        ax.set_yticks(())
    return fig


def loss_curve(iterations: list[int], losses: list[float]) -> Figure:
    """The training loss per iteration, titled with the estimator's name."""
    fig = Figure()
    ax = fig.subplots()
    ax.plot(iterations, losses, marker="o")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_title(f"{model.NAME} loss curve")
    ax.grid(True, alpha=0.3)
    return fig


def misclassified_grid(images: np.ndarray, predictions: np.ndarray, rows: int, cols: int) -> Figure:
    """The first rows x cols misclassified test digits, each labelled true -> predicted.

    ``images`` holds every digit, one flattened image a row; ``predictions`` the
    (index, actual, predicted) rows of the test digits. The digits are tiled into one
    image on one set of axes: an Axes per digit would triple the stage's drawing time.
    """
    wrong = predictions[predictions[:, 1] != predictions[:, 2]]
    side = math.isqrt(images.shape[1])
    cell = side + MOSAIC_GAP
    mosaic = np.zeros((rows * cell, cols * cell))
    # The axes get the mosaic's own aspect ratio, so that the image fills them: in axes
    # of any other shape, imshow centres it and leaves blank bands above and below.
    width, height = MOSAIC_CELL_INCHES * cols, MOSAIC_CELL_INCHES * rows
    total = MOSAIC_MARGIN_INCHES + height + MOSAIC_TITLE_INCHES
    fig = Figure(figsize=(width, total))
    ax = fig.add_axes((0, MOSAIC_MARGIN_INCHES / total, 1, height / total))
    for n, (index, actual, predicted) in enumerate(wrong[: rows * cols]):
        row, col = divmod(n, cols)
        top, left = row * cell + MOSAIC_GAP, col * cell + MOSAIC_GAP // 2
        mosaic[top : top + side, left : left + side] = images[index].reshape(side, side)
        label = f"{actual} -> {predicted}"
        ax.text(left + side / 2, top - 1, label, ha="center", va="bottom", fontsize=8)
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(
        f"{len(wrong)} of {len(predictions)} test digits misclassified (true -> predicted)",
        fontsize=9,
        y=1 - MOSAIC_MARGIN_INCHES / total,
        va="top",
    )
    return fig


def save_png(fig: Figure, path: Path) -> None:
    """Save ``fig`` as a PNG whose bytes depend on nothing but the figure."""
    fig.savefig(path, format="png", metadata=_PNG_METADATA)


def run(files: Layout) -> None:
    """Draw the figures from train's outputs under ``files``."""
    params = load_params(files.params).visualize
    weights = formats.read_weights(files.weights)
    losses = formats.read_loss(files.loss_csv)
    images = formats.read_array(files.images, mmap_mode="r")
    predictions = formats.read_predictions(files.predictions)
    with all_or_none() as out:
        save_png(weight_grid(weights, params), out.temp(files.weights_png))
        save_png(loss_curve(*losses), out.temp(files.loss_png))
        grid = misclassified_grid(
            images, predictions, params.misclassified_rows, params.misclassified_cols
        )
        save_png(grid, out.temp(files.misclassified_png))


def main() -> None:
    run(paths.PROJECT)


if __name__ == "__main__":
    refuse_direct_run("visualize")

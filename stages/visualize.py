"""Stage visualize: the first layer's weights, how they formed, every unit's verdict, the
loss curve and the misclassified digits.

Reads params ``visualize``, ``outputs/weights.npz`` and ``outputs/weights_by_epoch.npz``
(pickle-free: nothing here is ever unpickled), ``outputs/loss.csv``, ``outputs/units.csv``,
``outputs/predictions.csv`` and the test images of ``data/images.npy`` (memory-mapped);
writes, all or none, ``outputs/weights.png`` (the example's picture), a grid like it for
each kept epoch in ``outputs/filters/`` (``EPOCH.png``, one gray scale across the
epochs), ``outputs/filmstrip.png`` (a few epochs side by side), ``outputs/units.png``
(every unit, sorted by structure, with its verdict), ``outputs/loss.png`` and
``outputs/misclassified.png``. A rerun writes the same bytes: the PNGs carry no date or
version.
"""

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from pipeline import arrays, formats, model, paths, units
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
    side = image_side(weights)
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


def image_side(weights: np.ndarray) -> int:
    """The side of the square image that each unit's input weights (a column) make."""
    n_features = weights.shape[0]
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise UserError(f"first-layer weights have {n_features} inputs, not a square image")
    return side


# Gray, with blank (NaN) cells white: the gaps between the tiles of a mosaic.
GRAY = matplotlib.colormaps["gray"].with_extremes(bad="white")


def tiled(weights: np.ndarray, shown: Sequence[int], cols: int, gap: int) -> np.ndarray:
    """The input weights of the units ``shown`` (columns of ``weights``) as one image: a square
    tile each, ``cols`` a row, in order, ``gap`` blank pixels beside (half on each side)
    and below each tile. Drawn with one ``imshow``, a grid costs the same whatever its
    size: an Axes a tile took 15 s for a 40 x 40 grid."""
    side = image_side(weights)
    cell = side + gap
    rows = math.ceil(len(shown) / cols)
    mosaic = np.full((rows * cell, cols * cell), np.nan)
    for n, unit in enumerate(shown):
        top, left = (n // cols) * cell, (n % cols) * cell + gap // 2
        mosaic[top : top + side, left : left + side] = weights[:, unit].reshape(side, side)
    return mosaic


def show_tiles(ax, mosaic: np.ndarray, scale: tuple[float, float], range_factor: float) -> None:
    """``mosaic`` on ``ax``, gray from ``range_factor`` x the scale's ends, no axes."""
    vmin, vmax = scale
    ax.imshow(
        mosaic,
        cmap=GRAY,
        vmin=range_factor * vmin,
        vmax=range_factor * vmax,
        interpolation="nearest",
    )
    ax.set_axis_off()


# The gap between tiles in the epochs' grids and the filmstrip, in pixels.
TILE_GAP = 4


def epoch_grid(
    weights: np.ndarray, params: VisualizeParams, scale: tuple[float, float], title: str
) -> Figure:
    """The grid of weights.png for one epoch's ``weights``, on the gray scale of every
    epoch (``scale``, the smallest and largest weight of all), titled."""
    drawn = range(min(params.rows * params.cols, weights.shape[1]))
    fig = Figure(figsize=(6.4, 6.4 * params.rows / params.cols + 0.4))
    ax = fig.add_axes((0.05, 0.02, 0.9, 0.9))
    show_tiles(ax, tiled(weights, drawn, params.cols, TILE_GAP), scale, params.range_factor)
    fig.suptitle(title)
    return fig


def epoch_title(epoch: int, model_epoch: int, last: int) -> str:
    """What an epoch's grid is: the initial weights, an epoch, or the model's own."""
    if epoch == 0:
        return "initial weights (epoch 0)"
    if epoch == model_epoch != last:
        return f"epoch {epoch} (the model's: early stopping's best)"
    return f"epoch {epoch}"


def filmstrip_epochs(kept: Sequence[int], frames: int) -> list[int]:
    """At most ``frames`` of the ``kept`` epochs for the filmstrip: for each of 1, 2, 5,
    10, 20, 50, ... up to the last epoch, the first kept epoch at or after it, and the
    last; where that is more than ``frames``, evenly spaced among them, the first and the
    last included (the last alone for one frame). Epoch 0, the initial noise, is left to
    outputs/filters/0.png."""
    trained = sorted(e for e in kept if e > 0)
    if not trained:
        return []
    wanted, step = [], 1
    while step < trained[-1]:
        wanted += [step * m for m in (1, 2, 5) if step * m < trained[-1]]
        step *= 10
    chosen = sorted({next(e for e in trained if e >= w) for w in wanted} | {trained[-1]})
    if len(chosen) <= frames:
        return chosen
    if frames == 1:
        return chosen[-1:]  # the model's filters, as weights.png
    picks = np.linspace(0, len(chosen) - 1, frames).round().astype(int)
    return [chosen[i] for i in sorted(set(picks))]


def filmstrip(
    first_layers: np.ndarray,
    kept: Sequence[int],
    chosen: Sequence[int],
    params: VisualizeParams,
    scale: tuple[float, float],
) -> Figure:
    """The weight grids of the ``chosen`` epochs side by side, on the gray scale of every
    kept epoch (``scale``, the smallest and largest weight of ``first_layers``), each
    titled with its epoch."""
    drawn = range(min(params.rows * params.cols, first_layers.shape[2]))
    fig = Figure(figsize=(3.2 * len(chosen), 3.1 * params.rows / params.cols + 0.35))
    axes = fig.subplots(1, len(chosen), squeeze=False).ravel()
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.08)
    for ax, epoch in zip(axes, chosen, strict=True):
        weights = first_layers[list(kept).index(epoch)]
        show_tiles(ax, tiled(weights, drawn, params.cols, TILE_GAP), scale, params.range_factor)
        ax.set_title(f"epoch {epoch}")
    return fig


# The colour of each verdict's label in units.png.
VERDICT_COLOURS = {
    units.DEAD: "#c53030",
    units.BARELY_TRAINED: "#b7791f",
    units.UNSTRUCTURED: "#d69e2e",
    units.STRUCTURED: "#2f855a",
}
# units.png: a unit's cell, with its label below, in inches; the title's lines above.
UNIT_CELL_INCHES = 0.95
UNIT_TITLE_INCHES = 0.75


def unit_gallery(
    weights: np.ndarray, measured: list[dict], drawn: int, range_factor: float
) -> Figure:
    """Every first-layer unit, sorted by its neighbour correlation (the noise first), each
    labelled with its number and verdict in the verdict's colour; the ``drawn`` units of
    weights.png in bold. One gray scale, weights.png's, so that large weights stand out.

    The units are tiled into one image on one set of axes, a blank gap between them: an
    Axes per unit would take seconds for a layer of a few hundred.
    """
    order = sorted(measured, key=lambda row: (row["neighbour_correlation"], row["unit"]))
    n = len(order)
    cols = max(10, math.ceil(math.sqrt(n))) if n > 10 else n
    rows = math.ceil(n / cols)
    side = image_side(weights)
    gap = side // 2  # room for each unit's label below it
    cell = side + gap
    width, height = UNIT_CELL_INCHES * cols, UNIT_CELL_INCHES * rows
    fig = Figure(figsize=(width, height + UNIT_TITLE_INCHES))
    ax = fig.add_axes((0, 0, 1, height / (height + UNIT_TITLE_INCHES)))
    for n_cell, row in enumerate(order):
        unit = row["unit"]
        ax.text(
            (n_cell % cols) * cell + gap // 2 + side / 2,
            (n_cell // cols) * cell + side + 1,
            f"{unit} {row['verdict']}",
            ha="center",
            va="top",
            fontsize=6.5,
            color=VERDICT_COLOURS[row["verdict"]],
            fontweight="bold" if unit < drawn else "normal",
        )
    mosaic = tiled(weights, [row["unit"] for row in order], cols, gap)
    show_tiles(ax, mosaic, (weights.min(), weights.max()), range_factor)
    found = units.tally(row["verdict"] for row in measured)
    counts = ", ".join(f"{found[v]} {v}" for v in units.VERDICTS)
    meanings = "; ".join(f"{v}: {units.MEANING[v]}" for v in units.VERDICTS[:-1])
    fig.suptitle(
        f"All {n} first-layer units by neighbour correlation, lowest first;"
        f" bold: the {drawn} drawn in weights.png\n{counts}\n{meanings}",
        fontsize=7,
        y=1 - 0.08 / (height + UNIT_TITLE_INCHES),
        va="top",
    )
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
    kept, first_layers, model_epoch = formats.read_weights_by_epoch(files.weights_by_epoch)
    measured = formats.read_units(files.units_csv)
    losses = formats.read_loss(files.loss_csv)
    images = arrays.read_array(files.images, mmap_mode="r")
    predictions = formats.read_predictions(files.predictions)
    with all_or_none() as out:
        save_png(weight_grid(weights, params), out.temp(files.weights_png))
        folder = out.folder(files.filters)
        scale = (first_layers.min(), first_layers.max())  # one gray scale for every epoch
        epochs = kept.tolist()
        for epoch, layer in zip(epochs, first_layers, strict=True):
            title = epoch_title(epoch, model_epoch, last=epochs[-1])
            grid = epoch_grid(layer, params, scale, title)
            save_png(grid, out.temp(folder / f"{epoch}.png"))
        chosen = filmstrip_epochs(epochs, params.filmstrip)
        strip = filmstrip(first_layers, epochs, chosen, params, scale)
        save_png(strip, out.temp(files.filmstrip_png))
        drawn = params.rows * params.cols
        gallery = unit_gallery(weights, measured, drawn, params.range_factor)
        save_png(gallery, out.temp(files.units_png))
        save_png(loss_curve(*losses), out.temp(files.loss_png))
        grid = misclassified_grid(
            images, predictions, params.misclassified_rows, params.misclassified_cols
        )
        save_png(grid, out.temp(files.misclassified_png))


def main() -> None:
    run(paths.PROJECT)


if __name__ == "__main__":
    refuse_direct_run("visualize")

"""All of params.yaml, every key checked, as one typed, frozen object for train and
visualize: the sections of ``pipeline/params.py`` (data), ``pipeline/split.py``,
``pipeline/model.py`` (train), ``pipeline/epochs.py`` and visualize's own, and what each
allows on its own but not with the others. How the file is read and how a problem is
told: ``pipeline/params.py``.
"""

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from pipeline import model
from pipeline.epochs import EpochParams
from pipeline.errors import UserError
from pipeline.model import TrainParams
from pipeline.params import DataParams, check, problems_error, quoted, read_yaml
from pipeline.schema import Float, Int, Section
from pipeline.split import SplitParams

# The largest grids a figure is drawn for: 1000 x 1000 digits would need tens of GB.
MAX_GRID_SIDE = 40
# The most epochs side by side in the filmstrip: beyond it, each would be a few pixels wide.
MAX_FRAMES = 12


class VisualizeParams(Section):
    """The weight grid (its shape and gray scale), the number of epochs in the filmstrip
    and the grid of misclassified digits."""

    rows: Annotated[Int, Field(ge=1, le=MAX_GRID_SIDE)]
    cols: Annotated[Int, Field(ge=1, le=MAX_GRID_SIDE)]
    range_factor: Annotated[Float, Field(gt=0)]
    misclassified_rows: Annotated[Int, Field(ge=1, le=MAX_GRID_SIDE)]
    misclassified_cols: Annotated[Int, Field(ge=1, le=MAX_GRID_SIDE)]
    filmstrip: Annotated[Int, Field(ge=1, le=MAX_FRAMES)]


class Params(Section):
    """All of params.yaml. The train section is the estimator's, from ``pipeline/model.py``."""

    data: DataParams
    split: SplitParams
    train: TrainParams
    epochs: EpochParams
    visualize: VisualizeParams


def problems_across_sections(params: Params) -> list[str]:
    """What each section allows on its own but not with the others, one line each. (The
    split's sizes against the data's, and early stopping's against the split's, are the
    train stage's to check: only it reads the data.)"""
    problems = params.split.problems()
    units, layer = model.drawn_units(params.train)
    rows, cols = params.visualize.rows, params.visualize.cols
    if rows * cols > units:
        problems.append(
            f"visualize.rows x visualize.cols = {rows} x {cols} = {rows * cols} cells, but"
            f" {layer} has only {units} units; make the grid at most {units} cells"
        )
    return problems


def parse_params(raw: Any) -> Params:
    """Check the parsed YAML ``raw`` and build ``Params``; a ``UserError`` lists every problem."""
    if not isinstance(raw, dict):
        raise UserError(
            "params.yaml: expected sections data, split, train, epochs and visualize, got"
            f" {quoted(raw)}"
        )
    params, lines = check(Params, raw)
    # Across sections only once every key is valid on its own: a check of two values
    # cannot run while one of them is refused.
    if params is not None:
        lines = problems_across_sections(params)
    if lines:
        raise problems_error(lines)
    return params


def load_params(path: Path) -> Params:
    """Read and check params.yaml at ``path``."""
    return parse_params(read_yaml(path))

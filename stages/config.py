"""Load params.yaml once, check every key, and hand each stage a typed, frozen object.

Every problem is reported at once, one line each, naming the key and the value. An
unknown key is an error with the nearest known key suggested, so a typo is never
silently ignored.

The file is parsed exactly as DVC parses it (YAML 1.2, by ruamel.yaml's safe loader), so
the values a stage uses are the values that dvc.lock, ``dvc params diff`` and ``dvc exp
show`` record: ``max_iter: 012`` is 12 for both, and ``yes``, ``on`` or ``1:00`` are
strings for both, which the typed fields then refuse.
"""

import difflib
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    ValidationError,
    model_validator,
)
from ruamel.yaml import YAML, YAMLError

from stages.errors import UserError


def _number_only(value: Any) -> Any:
    # pydantic's lax mode would read ``true`` as 1 and "12" as 12. DVC records both as what
    # they are, a boolean and a string: a number here is a YAML number, nothing else.
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    if isinstance(value, str):
        raise ValueError("expected a number, not a string (remove the quotes)")
    return value


def _positive_int_or_auto(value: Any) -> int | str:
    if value == "auto":
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError("expected a positive integer or 'auto'")


Float = Annotated[float, BeforeValidator(_number_only), Field(allow_inf_nan=False)]
Int = Annotated[int, BeforeValidator(_number_only)]
BatchSize = Annotated[int | str, PlainValidator(_positive_int_or_auto)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    """How fetch_and_scale gets and scales the images (and where train splits them)."""

    source: Literal["idx", "openml"]
    pixel_dtype: Literal["float32", "float64"]
    train_size: Annotated[Int, Field(ge=1)]


class TrainParams(_Section):
    """The arguments of scikit-learn's ``MLPClassifier``, under their own names."""

    hidden_layer_sizes: Annotated[list[Annotated[Int, Field(ge=1)]], Field(min_length=1)]
    activation: Literal["identity", "logistic", "tanh", "relu"]
    solver: Literal["lbfgs", "sgd", "adam"]
    alpha: Annotated[Float, Field(ge=0)]
    batch_size: BatchSize
    learning_rate: Literal["constant", "invscaling", "adaptive"]
    learning_rate_init: Annotated[Float, Field(gt=0)]
    power_t: Float
    max_iter: Annotated[Int, Field(ge=1)]
    shuffle: StrictBool
    random_state: Annotated[Int, Field(ge=0, le=2**32 - 1)]
    tol: Annotated[Float, Field(ge=0)]
    momentum: Annotated[Float, Field(ge=0, le=1)]
    nesterovs_momentum: StrictBool
    early_stopping: StrictBool
    validation_fraction: Annotated[Float, Field(gt=0, lt=1)]
    beta_1: Annotated[Float, Field(ge=0, lt=1)]
    beta_2: Annotated[Float, Field(ge=0, lt=1)]
    epsilon: Annotated[Float, Field(gt=0)]
    n_iter_no_change: Annotated[Int, Field(ge=1)]
    max_fun: Annotated[Int, Field(ge=1)]

    def estimator_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``MLPClassifier``."""
        kwargs = self.model_dump()
        kwargs["hidden_layer_sizes"] = tuple(self.hidden_layer_sizes)
        return kwargs


# The largest grids a figure is drawn for: 1000 x 1000 digits would need tens of GB.
MAX_GRID_SIDE = 40


class VisualizeParams(_Section):
    """The weight grid (its shape and gray scale) and the grid of misclassified digits."""

    rows: Annotated[Int, Field(ge=1, le=MAX_GRID_SIDE)]
    cols: Annotated[Int, Field(ge=1, le=MAX_GRID_SIDE)]
    range_factor: Annotated[Float, Field(gt=0)]
    misclassified_rows: Annotated[Int, Field(ge=1, le=MAX_GRID_SIDE)]
    misclassified_cols: Annotated[Int, Field(ge=1, le=MAX_GRID_SIDE)]


class Params(_Section):
    """All of params.yaml."""

    data: DataParams
    train: TrainParams
    visualize: VisualizeParams

    @model_validator(mode="after")
    def _grid_fits_first_layer(self) -> "Params":
        units = self.train.hidden_layer_sizes[0]
        cells = self.visualize.rows * self.visualize.cols
        if cells > units:
            raise ValueError(
                f"visualize.rows x visualize.cols = {self.visualize.rows} x {self.visualize.cols}"
                f" = {cells} cells, but the first hidden layer has only {units} units"
                f" (train.hidden_layer_sizes[0]); make the grid at most {units} cells"
            )
        return self


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _quoted(value: Any) -> str:
    """``value`` for a message, a long or deeply nested one cut short to keep it one line."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 3, 60, 60
    return short.repr(value)


def _describe(error: dict) -> str:
    loc = error["loc"]
    key = ".".join(str(part) for part in loc) or "params.yaml"
    if error["type"] == "missing":
        return f"{key}: missing"
    if error["type"] == "extra_forbidden":
        known = list(_model_at(loc[:-1]).model_fields) if _model_at(loc[:-1]) else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
        return f"{key}: unknown key{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error" and not loc:
        return message
    return f"{key}: {message} (got {_quoted(error['input'])})"


def parse_params(raw: Any) -> Params:
    """Check the parsed YAML ``raw`` and build ``Params``; a ``UserError`` lists every problem."""
    if not isinstance(raw, dict):
        raise UserError(
            f"params.yaml: expected sections data, train and visualize, got {_quoted(raw)}"
        )
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise UserError(
            f"params.yaml has {len(lines)} problem{'s' if len(lines) > 1 else ''}:\n  "
            + "\n  ".join(lines)
        ) from None


def read_yaml(path: Path) -> Any:
    """The content of the YAML file ``path``, parsed as DVC parses params files.

    That is ``dvc.utils.serialize.parse_yaml``: ruamel.yaml's safe loader, YAML 1.2.
    PyYAML (YAML 1.1) would read ``012`` as 10, ``yes`` as true and ``1:00`` as 60 where
    DVC records 12, "yes" and "1:00".
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} not found: the pipeline needs its params.yaml") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}):"
            " params.yaml must be a YAML text file"
        ) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
    except RecursionError:
        # ruamel.yaml parses nested blocks recursively; params.yaml nests three levels.
        raise UserError(
            f"{path} is nested too deeply for a YAML parser to read: params.yaml holds"
            " sections of plain values"
        ) from None


def load_params(path: Path) -> Params:
    """Read and check params.yaml at ``path``."""
    return parse_params(read_yaml(path))

"""params.yaml as DVC reads it, and how a problem in it is told: the file's one parser, a
section checked against its schema, one message for every problem found.

Every problem is reported at once, one line each, naming the key and the value. An
unknown key is an error with the nearest known key suggested, so a typo is never
silently ignored. The file is parsed exactly as DVC parses it (YAML 1.2, by ruamel.yaml's
safe loader), so the values a stage uses are the values that dvc.lock, ``dvc params
diff`` and ``dvc exp show`` record: ``max_iter: 012`` is 12 for both, and ``yes``, ``on``
or ``1:00`` are strings for both, which the typed fields then refuse.

This module knows the data section (``DataParams``, ``load_data``), which fetch_and_scale
reads alone; ``pipeline/config.py`` builds the whole file from the sections, the
estimator's included. So fetch_and_scale depends on neither the estimator nor the split.
"""

import difflib
import reprlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML, YAMLError

from pipeline.errors import UserError
from pipeline.schema import Section


class DataParams(Section):
    """How fetch_and_scale gets and scales the images."""

    source: Literal["idx", "openml"]
    pixel_dtype: Literal["float32", "float64"]


# Keys that moved: their new section, and the line that says where. An old params.yaml
# gets that line alone, not also one saying that the new section is missing.
MOVED = {
    ("data", "train_size"): (
        "split",
        "data.train_size: replaced by split.train_size, in the section split that holds"
        " scikit-learn's train_test_split arguments; with split.shuffle: false and"
        " split.test_size: null, the first N rows train as before (params.yaml in git has"
        " the section: `git show HEAD:params.yaml`)",
    ),
}


def check(schema: type[BaseModel], raw: Any, *, at: tuple[str, ...] = ()) -> tuple[Any, list[str]]:
    """``raw`` checked against ``schema`` (the section at ``at`` of params.yaml, or all of
    it): the built object, or None and a line for each problem."""
    try:
        return schema.model_validate(raw), []
    except ValidationError as exc:
        errors = [error | {"loc": (*at, *error["loc"])} for error in exc.errors()]
    moved = {tuple(error["loc"]) for error in errors} & set(MOVED)
    new_homes = {(MOVED[loc][0],) for loc in moved}
    return None, [
        _describe(error, schema, at)
        for error in errors
        if not (error["type"] == "missing" and tuple(error["loc"]) in new_homes)
    ]


def _section_at(schema: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    section = schema
    for part in loc:
        field = section.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        section = annotation
    return section


def quoted(value: Any) -> str:
    """``value`` for a message, a long or deeply nested one cut short to keep it one line."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 3, 60, 60
    return short.repr(value)


def _describe(error: dict, schema: type[BaseModel], at: tuple[str, ...]) -> str:
    loc = error["loc"]
    key = ".".join(str(part) for part in loc) or "params.yaml"
    if error["type"] == "missing":
        return f"{key}: missing"
    if error["type"] == "extra_forbidden" and tuple(loc) in MOVED:
        return MOVED[tuple(loc)][1]
    if error["type"] == "extra_forbidden":
        section = _section_at(schema, loc[len(at) : -1])
        known = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
        return f"{key}: unknown key{hint}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message} (got {quoted(error['input'])})"


def problems_error(lines: list[str]) -> UserError:
    """The one message for every problem of params.yaml that was found, one line each."""
    return UserError(
        f"params.yaml has {len(lines)} problem{'s' if len(lines) > 1 else ''}:\n  "
        + "\n  ".join(lines)
    )


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
    return parse_yaml(text, path)


def parse_yaml(text: str, where: Path | str) -> Any:
    """YAML ``text`` (of the file ``where``, for messages) parsed as DVC parses params
    files: the one parser of params files in this project, stages, verify and sweep alike."""
    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise UserError(f"{where} is not valid YAML: {exc}".replace("\n", " ")) from None
    except RecursionError:
        # ruamel.yaml parses nested blocks recursively; params.yaml nests three levels.
        raise UserError(
            f"{where} is nested too deeply for a YAML parser to read: params.yaml holds"
            " sections of plain values"
        ) from None


def load_data(path: Path) -> DataParams:
    """Read params.yaml at ``path`` and check its data section alone."""
    raw = read_yaml(path)
    data, lines = check(
        DataParams, raw.get("data") if isinstance(raw, dict) else None, at=("data",)
    )
    if lines:
        raise problems_error(lines)
    return data

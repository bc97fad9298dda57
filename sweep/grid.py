"""The grid of a sweep: ``-S`` flags in ``dvc exp run -S`` syntax, expanded into points.

DVC's own parser does the expanding, as ``dvc exp run --queue -S`` does (Hydra's
override grammar), so that a flag means here exactly what it means to DVC: a comma list
sweeps, several flags give their cross product (the first flag varies slowest), and
values are normalised as DVC writes them (``1e-5`` becomes ``1e-05``, ``'a,b'`` stays
one string). ``[FILE:]KEY=VALUE`` names a params file other than params.yaml.

``check_points`` then applies each point's overrides to the sweep commit's params
files, as ``dvc exp run -S`` will, and checks params.yaml with the stages' own
validation: a grid with a point that would fail is refused before anything starts.
``${...}`` interpolation is refused: DVC would resolve it (``${oc.env:NAME}`` reads a
variable of the worker), and a value that failed validation would be printed.
"""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline import dvc_api
from pipeline.dvc_api import PARAMS_FILE as DEFAULT_PARAMS_FILE
from pipeline.errors import UserError


@dataclass(frozen=True)
class Override:
    """One ``KEY=VALUE`` of one params file."""

    file: str
    key: str
    text: str  # KEY=VALUE as DVC normalised it

    @property
    def flag(self) -> str:
        """The value of ``dvc exp run -S`` that sets it."""
        return self.text if self.file == DEFAULT_PARAMS_FILE else f"{self.file}:{self.text}"

    @property
    def label(self) -> str:
        """The key, prefixed with its file when that is not params.yaml."""
        return self.key if self.file == DEFAULT_PARAMS_FILE else f"{self.file}:{self.key}"


@dataclass(frozen=True)
class Point:
    """One point of the grid: the overrides of one experiment."""

    overrides: tuple[Override, ...]

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(override.flag for override in self.overrides)

    def __str__(self) -> str:
        return " ".join(self.flags)


def expand(flags: list[str]) -> list[Point]:
    """The points of the cross product of ``flags`` (each a ``dvc exp run -S`` value)."""
    if not flags:
        raise UserError(
            "no -S given: name at least one parameter to sweep, e.g. -S 'train.alpha=1e-5,1e-4'"
        )
    for flag in flags:
        if "${" in flag:
            raise UserError(
                f"-S {flag!r}: ${{...}} interpolation is not allowed in a sweep; give the value"
            )
        try:
            [files] = dvc_api.grid([flag])[:1]
            keys = [key for texts in files.values() for key in dvc_api.override_keys(texts)]
        except dvc_api.FlagError as exc:
            raise UserError(
                f"-S {flag!r}: {exc}; expected [FILE:]KEY=VALUE[,VALUE...] as for `dvc exp run -S`"
            ) from None
        if not all(keys):
            raise UserError(f"-S {flag!r}: no KEY before '='; expected [FILE:]KEY=VALUE")
        for file in files:
            path = PurePosixPath(file)
            if not file or path.is_absolute() or ".." in path.parts:
                raise UserError(
                    f"-S {flag!r}: {file or 'FILE'} must be a file of the project, as a path"
                    " relative to its root"
                )
    points = []
    for files in dvc_api.grid(flags):
        overrides = tuple(
            Override(file, key, text)
            for file, texts in files.items()
            for text, key in zip(texts, dvc_api.override_keys(texts), strict=True)
        )
        points.append(Point(overrides))
    return points


def check_points(points: list[Point], file_at_base: Callable[[str], bytes | None]) -> None:
    """Refuse the grid if a point would fail: its file missing, an override that DVC
    cannot apply, or params.yaml invalid once the overrides are applied.

    ``file_at_base(path)`` gives a params file's bytes at the sweep's commit, or ``None``.
    A UserError lists each distinct problem once, with the first point that has it.
    """
    from pipeline.config import load_params  # the stages' own validation

    base_files: dict[str, bytes] = {}
    for file in {o.file for point in points for o in point.overrides}:
        content = file_at_base(file)
        if content is None:
            flag = next(o.flag for p in points for o in p.overrides if o.file == file)
            raise UserError(f"-S {flag!r}: {file} is not in the commit the sweep runs at")
        base_files[file] = content
    base_files.setdefault(DEFAULT_PARAMS_FILE, file_at_base(DEFAULT_PARAMS_FILE) or b"")

    problems: dict[str, list[Point]] = {}
    with tempfile.TemporaryDirectory(prefix="sweep-check-") as tmp:
        for point in points:
            for file, content in base_files.items():
                (Path(tmp) / file).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / file).write_bytes(content)
            problem = None
            for file in dict.fromkeys(o.file for o in point.overrides):
                texts = [o.text for o in point.overrides if o.file == file]
                if file == DEFAULT_PARAMS_FILE:
                    # Hydra's "add or change": an unknown key then reaches the stages'
                    # validation, which names the nearest known one.
                    texts = [t if t.startswith(("~", "+")) else f"++{t}" for t in texts]
                try:
                    dvc_api.apply_overrides(Path(tmp) / file, texts)
                except dvc_api.FlagError as exc:
                    problem = f"{file}: {exc}"
                    break
            if problem is None:
                try:
                    load_params(Path(tmp) / DEFAULT_PARAMS_FILE)
                except UserError as exc:
                    problem = " ".join(str(exc).split())
            if problem is not None:
                problems.setdefault(problem, []).append(point)
    if not problems:
        return
    lines = [
        f"{point}: {problem}" + (f" ({len(found)} points)" if len(found) > 1 else "")
        for problem, found in problems.items()
        for point in found[:1]
    ]
    if len(lines) == 1:
        raise UserError(f"{lines[0]}; nothing ran")
    raise UserError(
        f"{sum(map(len, problems.values()))} of {len(points)} points would fail; nothing ran:\n  "
        + "\n  ".join(lines)
    )

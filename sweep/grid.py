"""The grid of a sweep: ``-S`` flags in ``dvc exp run -S`` syntax, expanded into points.

DVC's own parser does the expanding, as ``dvc exp run --queue -S`` does (Hydra's
override grammar), so that a flag means here exactly what it means to DVC: a comma list
sweeps, several flags give their cross product (the first flag varies slowest), and
values are normalised as DVC writes them (``1e-5`` becomes ``1e-05``, ``'a,b'`` stays
one string). ``[FILE:]KEY=VALUE`` names a params file other than params.yaml.
"""

from dataclasses import dataclass

from stages.errors import UserError

DEFAULT_PARAMS_FILE = "params.yaml"


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
    # DVC's parsing, imported here: importing dvc takes half a second that --help does not need
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps, to_hydra_overrides
    from hydra.errors import HydraException

    if not flags:
        raise UserError(
            "no -S given: name at least one parameter to sweep, e.g. -S 'train.alpha=1e-5,1e-4'"
        )
    for flag in flags:
        try:
            get_hydra_sweeps(to_path_overrides([flag]))
        except (HydraException, InvalidArgumentError) as exc:
            # Hydra's last line is a link to its grammar: the hint below says it shorter
            reason = [line for line in str(exc).splitlines() if not line.startswith("See https")]
            raise UserError(
                f"-S {flag!r}: {' '.join(reason)};"
                " expected [FILE:]KEY=VALUE[,VALUE...] as for `dvc exp run -S`"
            ) from None
    points = []
    for sweep in get_hydra_sweeps(to_path_overrides(flags)):
        overrides = tuple(
            Override(file, parsed.key_or_group, text)
            for file, texts in sweep.items()
            for text, parsed in zip(texts, to_hydra_overrides(texts), strict=True)
        )
        points.append(Point(overrides))
    return points

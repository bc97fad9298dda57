"""The published numbers: the losses and accuracies of the outputs on disk against those of
the example's version that params.yaml describes (``pipeline/published.py``)."""

import csv
import math

from pipeline import datasets, formats, published
from pipeline.config import load_params
from pipeline.errors import UserError
from pipeline.paths import Layout
from tools.verify.report import BadInput, Check, kind_of, labelled, report, shown


def check_numbers(losses: list[float], metrics: dict, version: published.Version) -> list[Check]:
    """The losses and accuracies against ``version``'s published ones, within the tolerances."""
    checks = []
    expected = version.losses
    if len(losses) != len(expected):
        checks.append(Check(False, f"losses: {len(losses)} iterations, published {len(expected)}"))
    else:
        gaps = [abs(a - b) for a, b in zip(losses, expected, strict=True)]
        # A NaN is never within tolerance, and max() would skip it.
        worst = math.nan if any(map(math.isnan, gaps)) else max(gaps)
        checks.append(
            Check(
                worst <= published.LOSS_TOLERANCE,
                f"losses: {len(losses)} iterations, largest difference from the published"
                f" {worst:.1e} (tolerance {published.LOSS_TOLERANCE:.0e})",
            )
        )
    tolerance = published.ACCURACY_TOLERANCE
    for key, number in version.accuracies.items():
        value = metrics.get(key)
        ok = isinstance(value, float) and math.isclose(value, number, abs_tol=tolerance)
        checks.append(Check(ok, f"{key}: {value} (published {number:f}, tolerance {tolerance})"))
    return checks


def published_version(files: Layout) -> tuple[published.Version | None, str]:
    """The published version that params.yaml describes, if any, and else how it differs
    from the nearest one, in one line; ``BadInput`` if params.yaml is invalid."""
    try:
        params = load_params(files.params)
    except UserError as exc:
        raise BadInput("; ".join(line.strip() for line in str(exc).splitlines())) from None
    except OSError as exc:
        raise BadInput(f"{files.params}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:  # not UTF-8
        raise BadInput(f"{files.params}: cannot read it ({shown(str(exc), 120)})") from None
    try:
        dataset = datasets.from_checksums(files.checksums)
    except UserError as exc:
        raise BadInput(shown(str(exc), 200)) from None
    if dataset is not datasets.MNIST:
        return None, (
            f"{files.checksums.relative_to(files.root)} names another data set than MNIST,"
            " on which both versions' numbers were published"
        )
    version = published.matching(params)
    if version:
        return version, ""
    nearest, differences = published.nearest(params)
    return None, f"differences from {nearest.title}: " + "; ".join(differences)


def check_published_numbers(files: Layout, version: published.Version) -> list[Check]:
    """The numbers of the outputs on disk against ``version``'s published ones."""
    try:
        losses = formats.read_loss(files.loss_csv)[1]
        metrics = formats.read_metrics(files.metrics)
    except FileNotFoundError as exc:
        return [labelled(False, "missing", f"{exc.filename}: run `dvc repro` to make it")]
    except OSError as exc:
        return [labelled(False, "unreadable", f"{exc.filename}: {exc.strerror}")]
    except (ValueError, KeyError, TypeError, csv.Error) as exc:
        return [labelled(False, "unreadable", f"the outputs' numbers: {shown(str(exc), 120)}")]
    if not isinstance(metrics, dict):
        return [
            labelled(False, "unreadable", f"{files.metrics}: {kind_of(metrics)}, not a mapping")
        ]
    return check_numbers(losses, metrics, version)


def numbers_failed(numbers: list[Check]) -> str:
    """What the verdict says of numbers that did not hold."""
    if any(check.label in ("missing", "unreadable") for check in numbers):
        return "the numbers cannot be read from the outputs (`dvc repro` writes them)"
    return "the numbers differ from the published ones"


def report_published_numbers(files: Layout, version: published.Version) -> str | None:
    """Check the outputs' numbers against ``version``'s published ones and report them,
    under the one title that names the version; None if they hold, else what a verdict
    says of them."""
    numbers = check_published_numbers(files, version)
    if report(f"the published numbers of {version.title}:", numbers):
        return None
    return numbers_failed(numbers)

"""verify's report: its lines, each a check that holds or fails, and the one-line refusal
of input that cannot be checked."""

import logging
from dataclasses import dataclass

from pipeline.dvc_api import kind_of, shown

__all__ = ["BadInput", "Check", "kind_of", "labelled", "log", "report", "shown"]

# One logger for the whole package: its report is one stream of lines.
log = logging.getLogger(__package__)


class BadInput(Exception):
    """dvc.lock, dvc.yaml, params.yaml or DVC's configuration cannot be checked as they
    are: one line, exit 2."""


@dataclass(frozen=True)
class Check:
    """One line of the report; ``label`` is its first word (``identical``, ``missing``...)."""

    ok: bool
    text: str
    label: str = ""


def report(title: str, checks: list[Check]) -> bool:
    """Log ``title`` and a line for each check; True if every check holds."""
    log.info("%s", title)
    for check in checks:
        log.info("  %s %s", "ok  " if check.ok else "FAIL", check.text)
    return all(check.ok for check in checks)


def labelled(ok: bool, label: str, text: str) -> Check:
    """A check whose line starts with ``label``, in a column of its own."""
    return Check(ok, f"{label:<10} {text}", label)

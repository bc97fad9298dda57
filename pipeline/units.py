"""The example's advice, measured on every first-layer unit.

scikit-learn's example says that weights which look unstructured may belong to units
that were never used, and that very large coefficients point at too little
regularization or too high a learning rate. For each unit this measures (docs/epochs.md
says how the thresholds were chosen):

- ``active_fraction``: the share of test digits on which the unit is active
  (``model.active_fraction``: for relu, its output is above 0);
- ``relative_change``: how far its weights moved from their initial values, as the norm
  of the change over the norm of the initial weights;
- ``max_abs_weight``: its largest weight, in absolute value;
- ``neighbour_correlation``: the correlation of the weights of neighbouring pixels (right
  and below): near 0 for the initial noise, high for strokes.

``relative_change`` and ``neighbour_correlation`` look only at the ink pixels, those that
are ink in at least ``INK`` of the test digits: the weights of a pixel that is always
blank never get a gradient, and stay the initial noise in every unit, trained or not.

Each unit gets the first verdict of ``VERDICTS`` that applies.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# A unit is active on a digit where its activation's slope is at least this share of the
# slope's largest value (for relu: where its output is above 0).
MIN_SLOPE = 0.01
# A pixel counts for the measures where it is ink (above 0) in this share of the digits.
INK = 0.01
# Below these, a unit that is active is barely trained, then unstructured.
MIN_CHANGE = 0.5
MIN_CORRELATION = 0.3

DEAD, BARELY_TRAINED, UNSTRUCTURED, STRUCTURED = (
    "dead",
    "barely trained",
    "unstructured",
    "structured",
)
VERDICTS = (DEAD, BARELY_TRAINED, UNSTRUCTURED, STRUCTURED)
# What each verdict means, in the stage's line and the picture's legend.
MEANING = {
    DEAD: "never active on the test set",
    BARELY_TRAINED: f"weights changed by less than {MIN_CHANGE:.0%}",
    UNSTRUCTURED: f"neighbouring weights correlate below {MIN_CORRELATION}",
    STRUCTURED: "strokes",
}


@dataclass(frozen=True)
class Unit:
    """One first-layer unit's measures and verdict; ``unit`` is its column in the
    first layer's weights (``model.first_layer_weights``)."""

    unit: int
    active_fraction: float
    relative_change: float
    max_abs_weight: float
    neighbour_correlation: float
    verdict: str


def ink_pixels(X: np.ndarray) -> np.ndarray:
    """The pixels that are ink in at least ``INK`` of the rows of ``X``, a boolean mask."""
    return (X > 0).mean(axis=0) >= INK


def neighbour_correlation(weights: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """For each unit (a column of ``weights``, one square image's pixels a row), the
    correlation of the weights of each ink pixel and its right and lower neighbours
    where those are ink too. 0 where the weights do not vary."""
    side = int(np.sqrt(len(ink)))
    images = weights.T.reshape(-1, side, side)
    mask = ink.reshape(side, side)
    right = mask[:, :-1] & mask[:, 1:]
    below = mask[:-1, :] & mask[1:, :]
    first = np.concatenate([images[:, :, :-1][:, right], images[:, :-1, :][:, below]], axis=1)
    second = np.concatenate([images[:, :, 1:][:, right], images[:, 1:, :][:, below]], axis=1)
    first = first - first.mean(axis=1, keepdims=True)
    second = second - second.mean(axis=1, keepdims=True)
    norms = np.sqrt((first**2).sum(axis=1) * (second**2).sum(axis=1))
    products = (first * second).sum(axis=1)
    return np.divide(products, norms, out=np.zeros_like(products), where=norms > 0)


def verdict(active_fraction: float, relative_change: float, correlation: float) -> str:
    """The first of ``VERDICTS`` that a unit's measures meet."""
    if active_fraction == 0:
        return DEAD
    if relative_change < MIN_CHANGE:
        return BARELY_TRAINED
    if correlation < MIN_CORRELATION:
        return UNSTRUCTURED
    return STRUCTURED


def diagnose(
    weights: np.ndarray, initial: np.ndarray, active_fraction: np.ndarray, ink: np.ndarray
) -> list[Unit]:
    """Every unit's measures and verdict, from its trained and initial ``weights``
    (features, units), its ``active_fraction`` and the ``ink`` pixels' mask."""
    change = np.linalg.norm((weights - initial)[ink], axis=0)
    start = np.linalg.norm(initial[ink], axis=0)
    relative = np.divide(change, start, out=np.full_like(change, np.inf), where=start > 0)
    largest = np.abs(weights).max(axis=0)
    correlation = neighbour_correlation(weights, ink)
    return [
        Unit(u, float(a), float(r), float(m), float(c), verdict(a, r, c))
        for u, (a, r, m, c) in enumerate(
            zip(active_fraction, relative, largest, correlation, strict=True)
        )
    ]


def tally(verdicts: Iterable[str]) -> dict[str, int]:
    """How many of ``verdicts`` are each of ``VERDICTS``, in that order."""
    found = Counter(verdicts)
    return {v: found[v] for v in VERDICTS}


def counts(units: list[Unit]) -> dict[str, int]:
    """The number of units, and of each verdict but ``structured``: the metrics of units.json."""
    found = tally(unit.verdict for unit in units)
    return {"units": len(units)} | {
        v.replace(" ", "_"): found[v] for v in VERDICTS if v != STRUCTURED
    }


def summary(units: list[Unit]) -> str:
    """The stage's line: ``units: 50 (5 never active on the test set, 1 unstructured)``."""
    found = tally(unit.verdict for unit in units)
    parts = [
        f"{found[v]} {MEANING[v] if v == DEAD else v}"
        for v in VERDICTS
        if v != STRUCTURED and found[v]
    ]
    return f"units: {len(units)}" + (f" ({', '.join(parts)})" if parts else ", all structured")

"""pipeline/units.py on synthetic layers: noise, strokes, dead and barely moved units get
their verdicts, and model.active_fraction means what docs/epochs.md says."""

import dataclasses

import numpy as np
import pytest

from pipeline import formats, model, units
from tests.test_model import with_train

SIDE = 28
RNG = np.random.default_rng(0)


def noise(n_units: int, seed: int = 0) -> np.ndarray:
    """Weights as scikit-learn draws them: uniform, bounded by Glorot's sqrt(6 / fan)."""
    bound = np.sqrt(6 / (SIDE * SIDE + n_units))
    return np.random.default_rng(seed).uniform(-bound, bound, (SIDE * SIDE, n_units))


def strokes(n_units: int) -> np.ndarray:
    """Smooth blobs and bars, as trained filters look: neighbours nearly equal."""
    y, x = np.mgrid[:SIDE, :SIDE] / SIDE
    layers = []
    for u in range(n_units):
        angle = u * np.pi / max(n_units, 1)
        bar = np.exp(-(((x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)) ** 2) / 0.01)
        layers.append(0.3 * bar.ravel())
    return np.stack(layers, axis=1)


ALL_INK = np.ones(SIDE * SIDE, dtype=bool)


def test_noise_is_near_zero_and_strokes_are_high():
    assert np.abs(units.neighbour_correlation(noise(20), ALL_INK)).max() < 0.15
    assert units.neighbour_correlation(strokes(20), ALL_INK).min() > 0.8
    # the thresholds lie between the two, with room on each side
    assert 0.15 < units.MIN_CORRELATION < 0.8


def test_each_verdict_on_a_synthetic_layer():
    initial = noise(5)
    trained = initial.copy()
    trained[:, 0] = initial[:, 0] + strokes(1)[:, 0] * 3  # moved far, strokes: structured
    trained[:, 1] = initial[:, 1] + strokes(1)[:, 0] * 3  # the same, but never active: dead
    trained[:, 2] = initial[:, 2] * 1.1  # moved by 10%: barely trained
    trained[:, 3] = (
        initial[:, 3] + noise(1, seed=1)[:, 0] * 5
    )  # moved far, still noise: unstructured
    trained[:, 4] = initial[:, 4] + strokes(1)[:, 0] * 3
    active = np.array([0.5, 0.0, 0.5, 0.5, 0.001])
    measured = units.diagnose(trained, initial, active, ALL_INK)
    assert [u.verdict for u in measured] == [
        units.STRUCTURED,
        units.DEAD,
        units.BARELY_TRAINED,
        units.UNSTRUCTURED,
        units.STRUCTURED,
    ]
    assert measured[2].relative_change == pytest.approx(0.1)
    assert measured[0].max_abs_weight == np.abs(trained[:, 0]).max()
    assert units.counts(measured) == {
        "units": 5,
        "dead": 1,
        "barely_trained": 1,
        "unstructured": 1,
    }
    assert units.summary(measured) == (
        "units: 5 (1 never active on the test set, 1 barely trained, 1 unstructured)"
    )
    assert units.summary([measured[0]]) == "units: 1, all structured"


def test_blank_pixels_do_not_count():
    # Pixels that are never ink keep the initial noise in every unit: a trained unit's
    # strokes on the ink pixels are what is measured.
    initial = noise(1)
    ink = np.zeros((SIDE, SIDE), dtype=bool)
    ink[8:20, 8:20] = True
    trained = initial.copy()
    trained[ink.ravel()] += strokes(1)[ink.ravel()] * 0.5
    on_ink = units.neighbour_correlation(trained, ink.ravel())[0]
    everywhere = units.neighbour_correlation(trained, ALL_INK)[0]
    assert on_ink > units.MIN_CORRELATION + 0.1 and everywhere < units.MIN_CORRELATION
    digits = np.zeros((100, SIDE * SIDE))
    digits[:, ink.ravel()] = RNG.random((100, int(ink.sum())))
    assert (units.ink_pixels(digits) == ink.ravel()).all()


def fitted(activation: str, weights: np.ndarray, bias: np.ndarray):
    """An estimator of the given activation whose first layer is (weights, bias)."""
    estimator = model.build(with_train(activation=activation, hidden_layer_sizes=[3]))
    estimator.coefs_, estimator.intercepts_ = [weights], [bias]
    return estimator


def test_active_fraction_is_relus_output_above_zero():
    X = RNG.normal(size=(1000, 4))
    weights, bias = RNG.normal(size=(4, 3)), np.array([0.0, -10.0, 10.0])
    estimator = fitted("relu", weights, bias)
    expected = ((X @ weights + bias) > 0).mean(axis=0)
    found = model.active_fraction(estimator, X, min_slope=units.MIN_SLOPE, rows=64)
    np.testing.assert_array_equal(found, expected)
    assert found[1] < 0.01 and found[2] > 0.99


@pytest.mark.parametrize(("activation", "saturated"), [("logistic", 6.0), ("tanh", 3.0)])
def test_saturating_units_are_inactive_where_their_slope_is_below_1_percent(activation, saturated):
    # inputs of 0, ±(saturated - 1) and ±(saturated + 1): active, active, inactive
    z = np.array([0.0, saturated - 1, -(saturated - 1), saturated + 1, -(saturated + 1)])
    estimator = fitted(activation, np.ones((1, 3)), np.zeros(3))
    found = [
        model.active_fraction(estimator, np.array([[v]]), min_slope=units.MIN_SLOPE)[0] for v in z
    ]
    assert found == [1, 1, 1, 0, 0]


def test_every_activation_has_a_slope():
    assert set(model._RELATIVE_SLOPE) == set(
        model.TrainParams.model_fields["activation"].annotation.__args__
    )


def test_units_csv_round_trips(tmp_path):
    measured = units.diagnose(noise(3), noise(3), np.array([0.0, 0.5, 1.0]), ALL_INK)
    path = tmp_path / "units.csv"
    formats.write_units(path, [dataclasses.astuple(u) for u in measured])
    assert path.read_text().splitlines()[0] == ",".join(formats.UNIT_FIELDS)
    assert formats.read_units(path) == [dataclasses.asdict(u) for u in measured]

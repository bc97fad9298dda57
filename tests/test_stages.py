"""The three stages' functions and mains on tiny synthetic data, without DVC."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import psutil
import pytest
import yaml
from matplotlib.image import imread
from sklearn.neural_network import MLPClassifier

from pipeline import formats, model, paths
from pipeline.config import VisualizeParams, load_params
from pipeline.errors import EXIT_USAGE, UserError
from pipeline.params import read_yaml
from pipeline.paths import Layout
from pipeline.settings import Settings
from stages import fetch_and_scale, train, visualize
from tests.conftest import EXAMPLE_ARGS, N_TEST, N_TRAIN


@pytest.fixture
def project(tmp_path, mnist_env) -> Layout:
    """The pipeline's files under tmp_path: params and checksums for the tiny data."""
    files = Layout.under(tmp_path)
    raw = read_yaml(paths.PROJECT.params)
    raw["split"]["train_size"] = N_TRAIN
    files.params.write_text(yaml.safe_dump(raw))
    files.checksums.parent.mkdir()
    files.checksums.write_bytes(mnist_env.checksums.read_bytes())
    return files


# fetch_and_scale


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scale_pixels_maps_0_255_to_0_1(dtype):
    scaled = fetch_and_scale.scale_pixels(np.array([[0, 51, 255]], dtype=np.uint8), dtype)
    assert scaled.dtype == dtype
    np.testing.assert_array_equal(scaled, np.array([[0, 0.2, 1]], dtype=dtype))


def test_scale_pixels_float64_is_bitwise_the_examples_division():
    pixels = np.arange(256, dtype=np.uint8)
    assert fetch_and_scale.scale_pixels(pixels, "float64").tobytes() == (pixels / 255.0).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_write_scaled_gives_np_save_bytes(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(fetch_and_scale, "ROWS_PER_CHUNK", 3)  # several chunks per part
    rng = np.random.default_rng(1)
    parts = [
        rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
        rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
    ]
    fetch_and_scale.write_scaled(tmp_path / "chunked.npy", parts, dtype)
    expected = fetch_and_scale.scale_pixels(np.concatenate(parts).reshape(11, 784), dtype)
    np.save(tmp_path / "whole.npy", expected)
    assert (tmp_path / "chunked.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()


def test_fetch_and_scale_writes_scaled_arrays_in_order(project, mnist_env):
    fetch_and_scale.run(project, Settings.from_environ(os.environ))
    images = np.load(project.images, mmap_mode="r")
    labels = np.load(project.labels)
    assert images.shape == (N_TRAIN + N_TEST, 784) and images.dtype == np.float64
    raw = np.concatenate([mnist_env.train_images, mnist_env.test_images]).reshape(-1, 784)
    np.testing.assert_array_equal(images, raw / 255.0)
    np.testing.assert_array_equal(
        labels, np.concatenate([mnist_env.train_labels, mnist_env.test_labels])
    )
    assert labels.dtype == np.uint8


# train


@pytest.fixture
def scaled(project) -> Layout:
    fetch_and_scale.run(project, Settings.from_environ(os.environ))
    return project


def split_of(files: Layout) -> train.Sets:
    """The sets that the train stage fits and scores, as params.yaml splits them."""
    return train.load_split(files, load_params(files.params), available=2**50)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_train_matches_a_direct_mlpclassifier_fit(scaled):
    params = load_params(scaled.params)
    sets = split_of(scaled)
    X_train, y_train, X_test = sets.X_train, sets.y_train, sets.X_test
    assert (len(X_train), len(X_test)) == (N_TRAIN, N_TEST)
    fitted = model.fit(X_train, y_train, params.train)
    reference = MLPClassifier(**EXAMPLE_ARGS).fit(np.array(X_train), np.array(y_train))
    assert fitted.loss_curve_ == reference.loss_curve_
    np.testing.assert_array_equal(fitted.coefs_[0], reference.coefs_[0])
    np.testing.assert_array_equal(model.first_layer_weights(fitted), reference.coefs_[0])
    assert model.loss_history(fitted) == list(enumerate(reference.loss_curve_, start=1))


def test_train_prints_losses_and_writes_outputs(scaled, capsys):
    returned = train.run(scaled)
    out = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in out[:10]] == [f"Iteration {i}" for i in range(1, 11)]
    assert out[10].startswith("Training set score: ") and out[11].startswith("Test set score: ")

    fitted = joblib.load(scaled.model)
    metrics = json.loads(scaled.metrics.read_text())
    assert metrics == returned
    assert set(metrics) == {"train_accuracy", "test_accuracy", "final_loss", "iterations"}
    assert out[10] == f"Training set score: {metrics['train_accuracy']:f}"
    assert out[11] == f"Test set score: {metrics['test_accuracy']:f}"
    assert metrics["final_loss"] == fitted.loss_curve_[-1] == fitted.loss_
    assert metrics["iterations"] == fitted.n_iter_ == 10

    lines = scaled.loss_csv.read_text().splitlines()
    assert lines[0] == "iteration,loss"
    assert [float(line.split(",")[1]) for line in lines[1:]] == fitted.loss_curve_
    np.testing.assert_array_equal(formats.read_weights(scaled.weights), fitted.coefs_[0])

    predictions = formats.read_predictions(scaled.predictions)
    X_test = np.load(scaled.images)[N_TRAIN:]
    np.testing.assert_array_equal(predictions[:, 0], np.arange(N_TRAIN, N_TRAIN + N_TEST))
    np.testing.assert_array_equal(predictions[:, 1], np.load(scaled.labels)[N_TRAIN:])
    np.testing.assert_array_equal(predictions[:, 2], fitted.predict(X_test))
    assert metrics["test_accuracy"] == fitted.score(X_test, predictions[:, 1])
    per_class = scaled.per_class.read_text().splitlines()
    assert per_class[0] == "digit,precision,recall,f1,support"
    assert [line.split(",")[0] for line in per_class[1:]] == [str(d) for d in range(10)]
    assert sum(int(line.split(",")[4]) for line in per_class[1:]) == N_TEST


def test_metrics_and_per_class_scores_against_hand_counts():
    class Fitted:  # evaluate reads only score()
        def score(self, X, y):
            return 0.75

    actual = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    metrics = train.evaluate(Fitted(), None, None, actual, predicted, [(1, 0.75), (2, 0.5)])
    assert metrics == {
        "train_accuracy": 0.75,
        "test_accuracy": 4 / 6,
        "final_loss": 0.5,
        "iterations": 2,
    }
    # class 0: predicted twice, right once; 2 true, found once
    assert train.per_class(np.array([0, 1, 2]), actual, predicted) == [
        (0, 0.5, 0.5, 0.5, 2),
        (1, 2 / 3, 1.0, 0.8, 2),
        (2, 1.0, 0.5, 2 / 3, 2),
    ]


def test_predictions_csv_indexes_rows_of_the_images(tmp_path):
    path = tmp_path / "predictions.csv"
    formats.write_predictions(path, np.array([61, 7]), np.array([3, 4]), np.array([3, 9]))
    assert path.read_text() == "index,actual,predicted\n61,3,3\n7,4,9\n"
    np.testing.assert_array_equal(formats.read_predictions(path), [[61, 3, 3], [7, 4, 9]])


def test_loss_csv_keeps_full_precision(tmp_path):
    path = tmp_path / "loss.csv"
    formats.write_loss(path, [(1, 0.1 + 0.2), (2, 1 / 3)])
    assert path.read_text() == "iteration,loss\n1,0.30000000000000004\n2,0.3333333333333333\n"
    assert formats.read_loss(path) == ([1, 2], [0.1 + 0.2, 1 / 3])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_lbfgs_which_keeps_no_loss_curve_records_its_final_loss(scaled):
    params = load_params(scaled.params)
    sets = split_of(scaled)
    X_train, y_train = sets.X_train, sets.y_train
    lbfgs = params.train.model_copy(update={"solver": "lbfgs", "max_iter": 3})
    fitted = model.fit(X_train, y_train, lbfgs)
    assert not hasattr(fitted, "loss_curve_")
    assert model.loss_history(fitted) == [(fitted.n_iter_, fitted.loss_)]
    assert model.loss_history(fitted)[0][0] == 3


def test_train_size_that_leaves_no_test_rows_is_refused(scaled):
    with_params(scaled, "split", train_size=N_TRAIN + N_TEST)
    with pytest.raises(UserError) as refused:
        split_of(scaled)
    assert str(refused.value) == (
        f"params.yaml's split (train_size = {N_TRAIN + N_TEST}, test_size = null) cannot split"
        f" the {N_TRAIN + N_TEST} digits of data/images.npy: scikit-learn's train_test_split"
        f" says: train_size={N_TRAIN + N_TEST} should be either positive and smaller than the"
        f" number of samples {N_TRAIN + N_TEST} or a float in the (0, 1) range"
    )


def test_train_without_data_says_how_to_make_it(project):
    with pytest.raises(UserError, match=r"images.npy not found: run `dvc repro` to make it"):
        split_of(project)


def test_an_array_that_would_need_unpickling_is_refused_in_one_line(scaled):
    np.save(scaled.labels, np.array([{"label": 1}] * (N_TRAIN + N_TEST), dtype=object))
    with pytest.raises(
        UserError, match=r"labels.npy is not an array that fetch_and_scale wrote \(Object arrays"
    ):
        split_of(scaled)


def test_diverging_training_is_one_message_naming_the_learning_rate(scaled):
    params = load_params(scaled.params).train.model_copy(update={"learning_rate_init": 1e308})
    sets = split_of(scaled)
    X_train, y_train = sets.X_train, sets.y_train
    with pytest.raises(
        UserError,
        match=r"^training diverged: .* train.learning_rate_init = 1e\+308 is likely too large",
    ):
        model.fit(X_train, y_train, params)


def with_params(files: Layout, section: str, **changes) -> Layout:
    raw = read_yaml(files.params)
    raw[section] |= changes
    files.params.write_text(yaml.safe_dump(raw))
    return files


def available(monkeypatch, n_bytes: int) -> None:
    """This machine has ``n_bytes`` of memory available, as far as the stage can tell."""
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=n_bytes))


def test_a_fit_too_large_for_the_memory_is_refused_before_it_starts(scaled, monkeypatch, capsys):
    # [10000000] tried to allocate 58.4 GiB for its first weights and died in numpy.
    # 60 rows of 784 pixels, 10 classes: (784 + 1) x 10^7 + (10^7 + 1) x 10 weights, 4 copies
    # for sgd; activations and deltas of the 60 rows; their shuffled copy; and recording the
    # epochs: 12 first layers kept (min(epochs.keep, max_iter) + 2), 2 copies of the
    # weights, and the forward pass that scores the 60 training rows.
    with_params(scaled, "train", hidden_layer_sizes=[10_000_000])
    weights = 785 * 10**7 + (10**7 + 1) * 10
    fitting = 4 * weights + 2 * 60 * (10**7 + 10) + 60 * 784
    recording = 12 * 784 * 10**7 + 2 * weights + 60 * (10**7 + 10)
    needed = 8 * (fitting + recording)
    available(monkeypatch, 16 * 2**30)
    with pytest.raises(UserError) as refused:
        train.run(scaled)
    assert str(refused.value) == (
        f"training needs at least {needed / 2**40:.1f} TiB of memory (its largest arrays,"
        " counted for train.hidden_layer_sizes = [10000000] and train.solver = sgd on 60 rows"
        " of 784 values, with 12 first layers of weights kept epoch by epoch (epochs.keep)),"
        " but this machine has 16.0 GiB available: make the hidden layers smaller,"
        " split.train_size or epochs.keep"
    )
    assert f"{needed / 2**40:.1f}" == "1.0"
    assert capsys.readouterr().out == ""  # not one iteration ran
    assert not scaled.model.parent.exists()


def test_train_runs_with_just_the_memory_it_needs_and_not_a_byte_less(scaled, monkeypatch):
    # The example's shape on 60 rows: (784 + 1) x 50 + 51 x 10 = 39760 weights; scoring
    # the 60 rows (2 copies kept, 60 x 60 outputs) is less than fitting them, and
    # recording each epoch: 12 first layers of 784 x 50 (min(epochs.keep, max_iter) + 2), 2
    # copies of the weights, and the forward pass that scores the 60 training rows (60 x 60).
    needed = 8 * (4 * 39760 + 2 * 60 * 60 + 60 * 784 + 12 * 784 * 50 + 2 * 39760 + 60 * 60)
    available(monkeypatch, needed - 1)
    with pytest.raises(UserError, match=r"^training needs at least 5\.9 MiB of memory"):
        train.run(scaled)
    available(monkeypatch, needed)
    assert train.run(scaled)["iterations"] == 10


def run_stage_in_a_fresh_process(module: str, files: Layout) -> subprocess.CompletedProcess:
    """Run stage ``module`` on ``files`` as ``python -m stages.<module>`` runs it on the project."""
    code = (
        f"from pathlib import Path; from pipeline import runner; from pipeline.paths import Layout;"
        f" from stages import {module};"
        f" runner.run_stage(lambda: {module}.run(Layout.under(Path({str(files.root)!r}))))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=paths.ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n", "is not UTF-8 text (byte 0 is 0x89)"),
        (b"train: " + b"[" * 600 + b"]" * 600, "is nested too deeply for a YAML parser to read"),
    ],
    ids=["binary", "nested"],
)
def test_a_stage_given_an_unreadable_params_file_says_so_in_one_line(project, content, expected):
    project.params.write_bytes(content)
    result = run_stage_in_a_fresh_process("train", project)
    assert result.returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {project.params} {expected}")


# visualize


def grid_params(**overrides) -> VisualizeParams:
    defaults = {
        "rows": 4,
        "cols": 4,
        "range_factor": 0.5,
        "misclassified_rows": 1,
        "misclassified_cols": 2,
        "filmstrip": 4,
    }
    return VisualizeParams(**(defaults | overrides))


def test_weight_grid_draws_first_units_on_one_scale():
    weights = np.random.default_rng(2).normal(size=(784, 20))
    fig = visualize.weight_grid(weights, grid_params(rows=2, cols=3))
    axes = fig.axes
    assert len(axes) == 6
    for unit, ax in enumerate(axes):
        [image] = ax.get_images()
        np.testing.assert_array_equal(image.get_array(), weights[:, unit].reshape(28, 28))
        assert image.get_clim() == (0.5 * weights.min(), 0.5 * weights.max())
        assert image.get_cmap().name == "gray"
        assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []


def tile(mosaic: np.ndarray, n: int, cols: int, gap: int) -> np.ndarray:
    """The n-th 28 x 28 tile of a mosaic that ``visualize.tiled`` made."""
    cell = 28 + gap
    top, left = (n // cols) * cell, (n % cols) * cell + gap // 2
    return np.asarray(mosaic)[top : top + 28, left : left + 28]


def test_each_epochs_grid_shares_one_gray_scale_and_is_titled():
    layers = np.random.default_rng(7).normal(size=(3, 784, 8)) * np.array([1, 2, 3])[:, None, None]
    scale = (layers.min(), layers.max())
    params = grid_params(rows=2, cols=3)
    for epoch, layer in enumerate(layers):
        title = visualize.epoch_title(epoch, model_epoch=1, last=2)
        fig = visualize.epoch_grid(layer, params, scale, title)
        [ax] = fig.axes
        [image] = ax.get_images()
        assert image.get_clim() == (0.5 * scale[0], 0.5 * scale[1])
        mosaic = image.get_array()
        assert mosaic.shape == (2 * (28 + visualize.TILE_GAP), 3 * (28 + visualize.TILE_GAP))
        for unit in range(6):  # the first rows x cols units, in order, as weights.png
            np.testing.assert_array_equal(
                tile(mosaic, unit, 3, visualize.TILE_GAP), layer[:, unit].reshape(28, 28)
            )
        assert (
            fig._suptitle.get_text()
            == [
                "initial weights (epoch 0)",
                "epoch 1 (the model's: early stopping's best)",
                "epoch 2",
            ][epoch]
        )
    # the example's own grid has no title
    assert visualize.weight_grid(layers[0], params)._suptitle is None


@pytest.mark.parametrize(
    ("kept", "frames", "expected"),
    [
        (range(11), 4, [1, 2, 5, 10]),
        (range(11), 2, [1, 10]),
        ([0, 8], 4, [8]),  # lbfgs: the initial and the final weights
        ([0, *range(16, 200, 16), 200], 4, [16, 32, 112, 200]),
        ([0, *range(1, 31)], 12, [1, 2, 5, 10, 20, 30]),
        ([0], 4, []),
    ],
)
def test_the_filmstrip_takes_the_1_2_5_series_up_to_the_last_epoch(kept, frames, expected):
    assert visualize.filmstrip_epochs(list(kept), frames) == expected


def test_the_filmstrip_shows_the_chosen_epochs_on_one_scale():
    layers = np.random.default_rng(8).normal(size=(3, 784, 4)) * np.array([1, 2, 3])[:, None, None]
    scale = (layers.min(), layers.max())
    fig = visualize.filmstrip(layers, [0, 1, 3], [1, 3], grid_params(rows=2, cols=2), scale)
    assert [ax.get_title() for ax in fig.axes] == ["epoch 1", "epoch 3"]
    images = [ax.get_images()[0] for ax in fig.axes]
    # epoch 3's first unit: the kept layer at index 2
    np.testing.assert_array_equal(
        tile(images[1].get_array(), 0, 2, visualize.TILE_GAP), layers[2][:, 0].reshape(28, 28)
    )
    assert {image.get_clim() for image in images} == {(0.5 * layers.min(), 0.5 * layers.max())}


def test_the_unit_gallery_sorts_by_structure_and_labels_each_verdict():
    weights = np.random.default_rng(9).normal(size=(784, 5))
    measured = [
        {"unit": u, "neighbour_correlation": c, "verdict": v}
        for u, c, v in [
            (0, 0.6, "structured"),
            (1, 0.01, "dead"),
            (2, 0.2, "unstructured"),
            (3, 0.5, "structured"),
            (4, 0.1, "barely trained"),
        ]
    ]
    fig = visualize.unit_gallery(weights, measured, drawn=2, range_factor=0.5)
    [ax] = fig.axes
    labels = [(t.get_text(), t.get_fontweight(), t.get_color()) for t in ax.texts]
    assert [text for text, _, _ in labels] == [
        "1 dead",
        "4 barely trained",
        "2 unstructured",
        "3 structured",
        "0 structured",
    ]
    # units 0 and 1 are those weights.png draws: bold
    assert [weight for _, weight, _ in labels] == ["bold", "normal", "normal", "normal", "bold"]
    assert labels[0][2] == visualize.VERDICT_COLOURS["dead"]
    [mosaic] = ax.get_images()
    side = 28
    np.testing.assert_array_equal(
        np.asarray(mosaic.get_array())[:side, 7 : 7 + side], weights[:, 1].reshape(side, side)
    )
    assert "1 dead, 1 barely trained, 1 unstructured, 2 structured" in fig._suptitle.get_text()


def drawable(files: Layout) -> Layout:
    """Train's outputs, made up, for visualize to draw."""
    files.weights.parent.mkdir()
    formats.write_weights(files.weights, np.random.default_rng(3).normal(size=(784, 16)))
    files.loss_csv.write_text("iteration,loss\n1,0.5\n2,0.25\n")
    np.save(files.images, np.random.default_rng(5).random((4, 784)))
    files.predictions.write_text("index,actual,predicted\n2,1,1\n3,4,9\n")
    layers = np.random.default_rng(6).normal(size=(4, 784, 16)) * np.arange(1, 5)[:, None, None]
    formats.write_weights_by_epoch(files.weights_by_epoch, np.array([0, 1, 2, 5]), layers, 5)
    rows = [
        (u, 0.5, 1.0, 1.0, (u * 7 % 16) / 16, "dead" if u == 3 else "structured") for u in range(16)
    ]
    formats.write_units(files.units_csv, rows)
    return files


def test_visualize_is_byte_identical_on_rerun(project):
    files = drawable(project)
    pngs = (
        files.weights_png,
        files.loss_png,
        files.misclassified_png,
        files.filmstrip_png,
        files.units_png,
        *(files.filters / f"{epoch}.png" for epoch in (0, 1, 2, 5)),
    )
    visualize.run(files)
    first = tuple(png.read_bytes() for png in pngs)
    assert sorted(p.name for p in files.filters.iterdir()) == ["0.png", "1.png", "2.png", "5.png"]
    visualize.run(files)
    assert tuple(png.read_bytes() for png in pngs) == first
    for png in first:
        assert png.startswith(b"\x89PNG") and b"matplotlib" not in png and b"Software" not in png


def test_misclassified_grid_shows_only_wrong_predictions_with_labels():
    images = np.random.default_rng(4).random((10, 784))
    predictions = np.array([[5, 1, 1], [6, 2, 7], [7, 3, 3], [8, 4, 0], [9, 5, 5]])
    fig = visualize.misclassified_grid(images, predictions, rows=1, cols=3)
    assert fig._suptitle.get_text() == "2 of 5 test digits misclassified (true -> predicted)"
    [ax] = fig.axes
    assert [text.get_text() for text in ax.texts] == ["2 -> 7", "4 -> 0"]
    [mosaic] = ax.get_images()
    tiles = np.asarray(mosaic.get_array())
    gap, cell = visualize.MOSAIC_GAP, 28 + visualize.MOSAIC_GAP
    assert tiles.shape == (cell, 3 * cell)
    for n, index in enumerate([6, 8]):
        left = n * cell + gap // 2
        np.testing.assert_array_equal(
            tiles[gap : gap + 28, left : left + 28], images[index].reshape(28, 28)
        )
    assert not tiles[:, 2 * cell :].any()  # the third cell stays empty: only two are wrong


def blank_bands(png: Path) -> list[int]:
    """The heights in pixels of the runs of blank rows in ``png``, from top to bottom,
    between the runs of rows with ink (a pixel darker than light grey)."""
    ink = (imread(png)[..., :3] < 0.9).any(axis=(1, 2))
    return [len(list(rows)) for has_ink, rows in itertools.groupby(ink) if not has_ink]


def test_misclassified_grid_has_no_blank_band_under_its_title(tmp_path):
    images = np.random.default_rng(6).random((40, 784))  # ink in every row of a digit
    predictions = np.array([[i, 1, 2] for i in range(40)])
    png = tmp_path / "misclassified.png"
    visualize.save_png(visualize.misclassified_grid(images, predictions, rows=4, cols=8), png)

    # the margin, the title, then 4 rows of labels over digits, and the margin
    top, under_title, *within_grid, bottom = blank_bands(png)
    assert len(within_grid) == 2 * 4 - 1
    between_rows = max(within_grid)
    assert between_rows == 12
    # No wider than the space between two rows of digits; it was 59 pixels.
    assert under_title <= between_rows
    assert top <= between_rows and bottom <= between_rows


def test_misclassified_grid_shows_at_most_rows_x_cols():
    images = np.ones((40, 784))
    predictions = np.array([[i, 1, 2] for i in range(40)])
    fig = visualize.misclassified_grid(images, predictions, rows=2, cols=3)
    assert len(fig.axes[0].texts) == 6
    assert fig._suptitle.get_text() == "40 of 40 test digits misclassified (true -> predicted)"


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        (
            {"learning_rate": "invscaling", "power_t": 1000.0},  # 61 ** 1000 after an epoch
            r"^training overflowed \(.*\): train.power_t = 1000.0 with train.learning_rate ="
            r" invscaling is likely too large; lower it and run again$",
        ),
        (
            {"alpha": 1e300},
            r"^training diverged: .* train.alpha = 1e\+300 \(the L2 penalty\) is likely too"
            r" large; lower it and run again$",
        ),
    ],
)
def test_an_overflow_or_a_divergence_names_the_setting_most_likely_at_fault(scaled, changes, said):
    # power_t 100 gave scikit-learn's OverflowError traceback; alpha 1e300 blamed the
    # learning rate.
    params = load_params(scaled.params).train.model_copy(update=changes)
    sets = split_of(scaled)
    with pytest.raises(UserError, match=said):
        model.fit(sets.X_train, sets.y_train, params)

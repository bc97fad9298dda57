"""The fit epoch by epoch (pipeline/epochs.py, model.each_epoch): the weights kept are the
weights of a fresh fit stopped at that epoch, recording changes no number, the hook fails
loudly where scikit-learn stops calling it, and the epochs kept stay bounded."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import _multilayer_perceptron

from pipeline import epochs, formats, model
from pipeline.errors import UserError
from tests.test_model import with_train

RNG = np.random.default_rng(0)
# 10 classes of 36-pixel "digits", a little structure so that the fit learns something
X = RNG.random((120, 36))
Y = np.arange(120) % 10
X[np.arange(120), Y * 3] += 2
X_TEST, Y_TEST = X[:40] + 0.05 * RNG.random((40, 36)), Y[:40]


def tiny(**changes):
    return with_train(hidden_layer_sizes=[6], max_iter=6, batch_size=20) | changes


def fit(params, on_epoch=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, Y, params, on_epoch=on_epoch)


def record(params, *, keep=50, scores=True):
    logged = []
    rows = epochs.Rows(X, Y, X_TEST, Y_TEST) if scores else None
    with epochs.Recorder(keep=keep, rows=rows, log=logged.append) as recorder:
        estimator = fit(params, recorder)
        return estimator, recorder.finish(estimator), logged


def with_params(**changes):
    return with_train(hidden_layer_sizes=[6], batch_size=20, **changes)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_epoch_k_is_a_fresh_fit_stopped_at_k(solver, capsys):
    params = with_params(solver=solver, max_iter=6)
    _, rec, _ = record(params)
    assert rec.epochs.tolist() == list(range(7))
    for k in range(1, 7):
        fresh = fit(with_params(solver=solver, max_iter=k))
        np.testing.assert_array_equal(rec.first_layer[k], model.first_layer_weights(fresh))
    # epoch 0: the initial weights, before any update
    first = fit(with_params(solver=solver, max_iter=1))
    assert not np.array_equal(rec.first_layer[0], model.first_layer_weights(first))
    capsys.readouterr()


def test_recording_changes_no_number_and_pickles_nothing_of_ours(capsys):
    params = with_params(max_iter=6)
    plain = fit(params)
    printed = capsys.readouterr().out
    recorded, rec, logged = record(params)
    assert capsys.readouterr().out == printed  # the same losses printed
    assert pickle.dumps(recorded) == pickle.dumps(plain)
    assert b"pipeline" not in pickle.dumps(recorded)
    # the last epoch's scores are the final model's, exactly
    last = logged[-1]
    assert (last.epoch, last.loss) == (6, plain.loss_curve_[-1])
    assert last.train_accuracy == plain.score(X, Y)
    assert last.test_accuracy == plain.score(X_TEST, Y_TEST)
    assert [s.epoch for s in logged] == [1, 2, 3, 4, 5, 6]
    assert [s.loss for s in logged] == plain.loss_curve_
    assert rec.model_epoch == 6


def test_scores_off_logs_the_loss_alone(capsys):
    _, _, logged = record(with_params(max_iter=3), scores=False)
    assert [set(s.metrics()) for s in logged] == [{"train/loss"}] * 3
    capsys.readouterr()


def test_early_stopping_keeps_the_best_epoch_and_says_which(capsys):
    params = with_params(max_iter=40, early_stopping=True, n_iter_no_change=2, tol=0.5)
    estimator, rec, logged = record(params, keep=3)
    capsys.readouterr()
    scores = [s.validation_score for s in logged]
    assert scores == estimator.validation_scores_
    best = int(np.argmax(scores)) + 1
    assert rec.model_epoch == best == model.kept_epoch(estimator)
    # the model's own weights are among those kept, under its epoch
    held = rec.first_layer[rec.epochs.tolist().index(best)]
    np.testing.assert_array_equal(held, model.first_layer_weights(estimator))
    assert rec.epochs[-1] == len(logged)  # and the last epoch, whatever the bound


def test_lbfgs_has_the_initial_and_the_final_weights(capsys):
    estimator, rec, logged = record(with_params(solver="lbfgs", max_iter=5))
    capsys.readouterr()
    assert rec.epochs.tolist() == [0, estimator.n_iter_]
    np.testing.assert_array_equal(rec.first_layer[-1], model.first_layer_weights(estimator))
    assert [s.epoch for s in logged] == [estimator.n_iter_]


def test_an_upgrade_that_stops_calling_the_hook_fails_loudly(monkeypatch, capsys):
    # As if scikit-learn no longer called _update_no_improvement_count at each epoch.
    original = _multilayer_perceptron.BaseMultilayerPerceptron._fit_stochastic

    def skipping(self, *args, **kwargs):
        self._update_no_improvement_count = lambda *a, **k: None  # replaces our wrapper
        return original(self, *args, **kwargs)

    monkeypatch.setattr(
        _multilayer_perceptron.BaseMultilayerPerceptron, "_fit_stochastic", skipping
    )
    with pytest.raises(model.HookBroken, match="each_epoch needs updating"):
        record(with_params(max_iter=3))
    capsys.readouterr()


def test_the_hook_is_called_once_an_epoch_by_the_installed_scikit_learn(capsys):
    # The contract each_epoch relies on, checked against the installed version directly.
    calls = []
    estimator = model.build(with_params(max_iter=4))
    method = estimator._update_no_improvement_count
    estimator._update_no_improvement_count = lambda *a, **k: (
        calls.append(estimator.n_iter_),
        method(*a, **k),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, Y)
    assert calls == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("limit", "n", "expected"),
    [
        (20, 10, list(range(11))),
        (4, 10, [0, 4, 8, 10]),  # every 4th, and the last
        (4, 13, [0, 4, 8, 12, 13]),
        (20, 200, [0, *range(16, 200, 16), 200]),
        (1, 7, [0, 7]),
    ],
)
def test_kept_epochs_are_evenly_spaced_and_bounded(limit, n, expected):
    kept = epochs.KeptWeights(limit)
    largest = 0
    for epoch in range(n + 1):
        kept.add(epoch, np.full((2, 2), float(epoch)))
        largest = max(largest, len(kept.held) + 1)
    held, weights = kept.result(n, np.full((2, 2), float(n)))
    assert held.tolist() == expected
    assert weights[:, 0, 0].tolist() == expected
    assert len(held) <= limit + 2 and largest <= epochs.layers_held(limit, n)


def test_a_thousand_epochs_keep_at_most_the_bound():
    kept = epochs.KeptWeights(20)
    for epoch in range(1001):
        kept.add(epoch, np.zeros((784, 2000), dtype=np.float32)[:1, :1])  # shape aside
    held, _ = kept.result(1000, np.zeros((1, 1), dtype=np.float32))
    assert len(held) <= 21 and held[0] == 0 and held[-1] == 1000
    assert np.all(np.diff(held[:-1]) == held[1])  # evenly spaced


def test_the_memory_bound_counts_the_epochs_kept_and_the_scoring():
    params = with_params(max_iter=3)
    sizes = dict(n_samples=1000, n_features=784, n_classes=10, n_test=500, itemsize=8)
    plain = model.memory_needed(params, **sizes)
    kept = model.memory_needed(params, **sizes, kept_layers=5)
    scored = model.memory_needed(params, **sizes, kept_layers=5, scored_each_epoch=True)
    weights = 785 * 6 + 7 * 10
    # the layers kept and the epoch's copy of the model; scored, a second copy and the
    # forward pass over the 1000 training rows
    assert kept - plain == 8 * (5 * 784 * 6 + weights)
    assert scored - kept == 8 * (weights + 1000 * (6 + 10))
    # what a fit can keep: no more epochs than it runs (lbfgs: none but its last)
    assert epochs.layers_held(20, model.epochs_at_most(params)) == 3 + 2
    assert epochs.layers_held(20, model.epochs_at_most(with_params(solver="lbfgs"))) == 3


SCORES = [
    epochs.Scores(1, 2.5, 0.5, 0.25, None),
    epochs.Scores(2, 1 / 3, 0.75, 0.5, float("nan")),
    epochs.Scores(3, 0.125, 0.875, 0.625, 0.1),
]


def files_under(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_the_log_is_dvclives_layout_byte_for_byte(tmp_path, monkeypatch):
    # DVCLive itself, as a user's script would log the same epochs, outside any repository
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "true")
    from dvclive import Live

    theirs = Live("theirs", report=None, save_dvc_exp=False, dvcyaml=None)
    for scores in SCORES:
        theirs.step = scores.epoch
        for name, value in scores.metrics().items():
            theirs.log_metric(name, value)
        theirs.next_step()
    theirs.end()
    ours = formats.EpochLog(tmp_path / "ours")
    for scores in SCORES:
        ours.append(scores.epoch, scores.metrics())
    assert files_under(tmp_path / "ours") == files_under(tmp_path / "theirs")
    assert formats.read_epoch_metric(tmp_path / "ours", "train/loss") == (
        [1, 2, 3],
        [2.5, 1 / 3, 0.125],
    )
    text = formats.epoch_metric_path(tmp_path / "ours", "validation/score").read_text()
    assert text == "step\tscore\n2\tnan\n3\t0.1\n"  # from the first epoch that has one


def test_the_log_grows_an_epoch_at_a_time(tmp_path):
    log = formats.EpochLog(tmp_path)
    log.append(SCORES[0].epoch, SCORES[0].metrics())
    path = formats.epoch_metric_path(tmp_path, "test/accuracy")
    assert path.read_text() == "step\taccuracy\n1\t0.25\n"
    log.append(SCORES[1].epoch, SCORES[1].metrics())
    assert path.read_text() == "step\taccuracy\n1\t0.25\n2\t0.5\n"
    assert '"step": 2' in (tmp_path / formats.EPOCH_SUMMARY).read_text()


def test_scoring_a_diverging_fit_warns_no_more_than_the_fit(capsys):
    # numpy's error state is per thread: the scoring thread silences what fit silences
    params = with_params(max_iter=5, learning_rate_init=1e30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UserError, match="training diverged"):
            record(params)
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    capsys.readouterr()


def test_ctrl_c_that_scikit_learn_swallows_is_not_a_broken_hook(monkeypatch, capsys):
    # Outside the stage (a notebook, the benchmark), Ctrl-C is a KeyboardInterrupt, which
    # scikit-learn's fit catches, returning the model of the epochs done: not an upgrade.
    mlp = _multilayer_perceptron.BaseMultilayerPerceptron
    original = mlp._update_no_improvement_count

    def interrupted_at_2(self, *args, **kwargs):
        if self.n_iter_ == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(mlp, "_update_no_improvement_count", interrupted_at_2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Training interrupted by user")
        estimator, rec, logged = record(with_params(max_iter=5))
    assert estimator.n_iter_ == 2
    assert [s.epoch for s in logged] == [1]
    assert rec.epochs.tolist() == [0, 1, 2]  # the model's epoch, its weights as returned
    capsys.readouterr()

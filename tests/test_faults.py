"""Faults: a stop at the worst moment, a full disk, outputs that cannot be written, what
killed runs left, a corrupt or hand-edited cache, the wrong interpreter. Each leaves
nothing that looks like a result, or says what is wrong."""

import contextlib
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.dvc_api import stage_commands
from pipeline.errors import EXIT_USAGE
from pipeline.params import read_yaml
from pipeline.paths import Layout
from pipeline.settings import Settings
from stages import fetch_and_scale
from tests.conftest import N_TEST, N_TRAIN, Repo
from tests.machines import md5
from tests.project import killed_writer, live_writer

TRAIN_OUTPUTS = (
    "model",
    "weights",
    "loss_csv",
    "metrics",
    "per_class",
    "predictions",
    "weights_by_epoch",
    "epochs",
    "units_csv",
    "units_metrics",
)


# --- a stage stopped or failing while it writes its outputs --------------------------------


@pytest.fixture
def scaled(tmp_path, mnist_env) -> Layout:
    """Tiny arrays and params under tmp_path, ready for train."""
    files = Layout.under(tmp_path)
    files.params.write_text(paths.PROJECT.params.read_text().replace("60000", str(N_TRAIN)))
    files.checksums.parent.mkdir()
    files.checksums.write_bytes(mnist_env.checksums.read_bytes())
    fetch_and_scale.run(files, Settings.from_environ(os.environ))
    return files


def run_train(files: Layout, setup: str, **env: str) -> subprocess.CompletedProcess:
    """Run the train stage on ``files`` in a fresh interpreter, after ``setup`` (Python
    that plants a fault: ``train``, ``formats``, ``artifacts``, ``runner``, ``errno``,
    ``os`` and ``signal`` are imported for it), as the runner runs it, with ``env`` added
    to the environment."""
    code = (
        textwrap.dedent(
            f"""
        from pipeline import cpu
        cpu.pin_float_paths()  # as the entry point does, before numpy loads
        import errno, os, signal
        from pathlib import Path
        from pipeline import artifacts, formats, runner
        from pipeline.paths import Layout
        from stages import train
        files = Layout.under(Path({str(files.root)!r}))
        """
        )
        + textwrap.dedent(setup)
        + "\nrunner.run_stage(lambda: train.run(files), stage='train')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=paths.ROOT,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def outputs_left(files: Layout) -> list[str]:
    folder = files.model.parent
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


KILL_AFTER_METRICS = """
write_metrics = formats.write_metrics
def killed_after(*args):
    write_metrics(*args)
    os.kill(os.getpid(), signal.SIGTERM)
formats.write_metrics = killed_after
"""

# As when SIGTERM's exception is raised inside a finalizer (ZipFile.__del__, say), which
# Python prints and forgets: the stop is recorded, but nothing unwinds.
SWALLOWED_STOP = """
write_weights = formats.write_weights
def swallowed(*args):
    write_weights(*args)
    runner._State.stopped_by = signal.SIGTERM
formats.write_weights = swallowed
"""


@pytest.mark.parametrize(
    "fault", [KILL_AFTER_METRICS, SWALLOWED_STOP], ids=["sigterm", "swallowed"]
)
def test_a_stop_while_outputs_are_written_leaves_none_and_says_so(scaled, fault):
    result = run_train(scaled, fault)
    assert result.returncode == 128 + 15, result.stderr
    assert (
        result.stderr.strip().splitlines()[-1] == "stopped by SIGTERM: this stage wrote no output"
    )
    assert "Traceback" not in result.stderr
    assert outputs_left(scaled) == []


KILL_DURING_COMMIT = """
replace = os.replace
def replace_then_stop(src, dst):
    replace(src, dst)
    os.kill(os.getpid(), signal.SIGTERM)
os.replace = replace_then_stop
"""


def test_where_dvc_ran_the_stage_the_message_says_how_to_get_its_outputs_back(scaled):
    # DVC removes a stage's outputs before it runs the stage's command
    result = run_train(scaled, KILL_AFTER_METRICS, DVC_STAGE="train")
    assert result.returncode == 128 + 15, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "stopped by SIGTERM: this stage wrote no output; DVC removed the stage's previous"
        " outputs when it started it: `dvc checkout train` brings them back"
    )
    assert outputs_left(scaled) == []


# A second stop while the first one unwinds: `kill` of DVC's process group, then the
# kernel's parent-death signal when DVC ends. It must cut short neither the cleanup nor
# the report.
SECOND_STOP_WHILE_CLEANING = (
    KILL_AFTER_METRICS
    + """
discard = artifacts.StagedOutputs.discard
def discard_after_a_second_stop(self):
    os.kill(os.getpid(), signal.SIGTERM)
    (files.root / "second stop arrived").touch()
    discard(self)
artifacts.StagedOutputs.discard = discard_after_a_second_stop
"""
)

SECOND_STOP_WHILE_REPORTING = (
    KILL_AFTER_METRICS
    + """
import logging
class StopAgain(logging.Filter):
    def filter(self, record):
        os.kill(os.getpid(), signal.SIGTERM)
        (files.root / "second stop arrived").touch()
        return True
runner.log.addFilter(StopAgain())
"""
)


@pytest.mark.parametrize(
    "fault",
    [SECOND_STOP_WHILE_CLEANING, SECOND_STOP_WHILE_REPORTING],
    ids=["cleaning", "reporting"],
)
def test_a_second_stop_cuts_short_neither_the_cleanup_nor_the_message(scaled, fault):
    result = run_train(scaled, fault)
    assert result.returncode == 128 + 15, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == ["stopped by SIGTERM: this stage wrote no output"]
    assert outputs_left(scaled) == []
    assert (scaled.root / "second stop arrived").exists()  # the fault did strike


# A stop that a finalizer swallowed, then another: the second must stop the stage at
# once, not when its work is done.
STOP_AFTER_A_SWALLOWED_ONE = (
    SWALLOWED_STOP
    + """
def stopped_again(*args):
    os.kill(os.getpid(), signal.SIGTERM)
    (files.root / "went on after the second stop").touch()
formats.write_loss = stopped_again
"""
)


def test_a_stop_after_a_swallowed_one_stops_the_stage_at_once(scaled):
    result = run_train(scaled, STOP_AFTER_A_SWALLOWED_ONE)
    assert result.returncode == 128 + 15, result.stderr
    assert result.stderr.strip().splitlines() == ["stopped by SIGTERM: this stage wrote no output"]
    assert not (scaled.root / "went on after the second stop").exists()
    assert outputs_left(scaled) == []


def test_a_stop_during_the_renames_waits_for_them_and_the_stage_finishes(scaled):
    result = run_train(scaled, KILL_DURING_COMMIT)
    assert result.returncode == 0, result.stderr
    assert "stopped" not in result.stderr
    expected = sorted(getattr(scaled, name).name for name in TRAIN_OUTPUTS)
    assert outputs_left(scaled) == expected


def test_a_full_disk_in_a_stage_is_one_line_and_leaves_nothing(scaled, tmp_path):
    full = tmp_path / "full.tmp"
    full.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    setup = (
        "artifacts.temp_beside = lambda target:"
        f" artifacts.LockedTemp(Path({str(full)!r}), os.open({str(full)!r}, os.O_WRONLY))\n"
    )
    result = run_train(scaled, setup)
    assert result.returncode == EXIT_USAGE
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: the disk is full")
    assert line.endswith("then run again; this stage wrote no output")
    assert "Traceback" not in result.stderr
    assert outputs_left(scaled) == []


# As on a folder made immutable, or an output path that is a folder, found only at the end.
REFUSED_RENAME = """
def refused(src, dst):
    raise OSError(errno.{name}, os.strerror(errno.{name}), str(dst))
os.replace = refused
"""


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("EPERM", "error: operation not permitted writing {target} (Operation not permitted):"),
        ("EISDIR", "error: a folder stands where a file goes writing {target} (Is a directory):"),
    ],
)
def test_a_refused_write_at_the_end_is_one_line_and_leaves_nothing(scaled, name, line):
    result = run_train(scaled, REFUSED_RENAME.format(name=name))
    assert result.returncode == EXIT_USAGE
    [error] = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert error.startswith(line.format(target=scaled.model))
    assert error.endswith("then run again; this stage wrote no output")
    assert "Traceback" not in result.stderr
    assert outputs_left(scaled) == []


# --- the outputs, checked and tidied before the work -----------------------------------------


def run_stage_command(repo: Repo, stage: str) -> subprocess.CompletedProcess:
    """``stage``'s command as dvc.yaml spells it, run in ``repo`` (without DVC)."""
    return repo.run(*stage_commands(repo.root)[stage], check=False)


def test_a_stage_removes_the_temporary_files_that_killed_runs_of_it_left(scaled_repo):
    repo = scaled_repo
    data, outputs = repo.root / "data", repo.root / "outputs"
    stale = [killed_writer(outputs / "model.joblib"), killed_writer(outputs / "loss.csv")]
    others = [
        killed_writer(outputs / "weights.png"),  # visualize's
        killed_writer(data / "images.npy"),  # fetch_and_scale's
        outputs / ".model.joblib.backup.tmp",  # the user's own
    ]
    others[-1].write_bytes(b"the user's")
    with live_writer(outputs / "weights.npz") as running:  # a concurrent run's
        result = run_stage_command(repo, "train")
        assert running.exists()
    assert result.returncode == 0, result.stderr
    assert [temp.exists() for temp in stale] == [False, False]
    assert all(temp.exists() for temp in others)
    line = f"removed {stale[0]}, left by a writer that no longer runs"
    assert line in result.stderr.splitlines()
    assert repo.git("status", "--porcelain") == ""


@contextlib.contextmanager
def immutable(folder: Path):
    """``folder`` made immutable for the block (even root cannot create files in it)."""
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("fault", ["folder_for_an_output", "immutable_folder"])
def test_outputs_that_cannot_be_written_are_one_line_before_any_work(scaled_repo, fault):
    outputs = scaled_repo.root / "outputs"
    if fault == "folder_for_an_output":
        (outputs / "model.joblib").mkdir()
        expected = f"error: {outputs / 'model.joblib'} is a folder, where this stage writes a file"
        held = contextlib.nullcontext()
    else:
        held = immutable(outputs)
        expected = f"error: cannot create files in {outputs} (Operation not permitted)"
    with held:
        result = run_stage_command(scaled_repo, "train")
    assert result.returncode == EXIT_USAGE
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(expected)
    assert error.endswith("then run again")
    assert "Iteration" not in result.stdout  # refused before the training
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_after_a_failed_stage_dvc_checkout_brings_its_outputs_back_as_the_message_says(tiny_repo):
    repo = tiny_repo
    repo.dvc("repro")
    model = repo.root / "outputs" / "model.joblib"
    good = md5(model)
    repo.set_param("train_size", str(N_TRAIN + N_TEST))  # leaves no test rows
    failed = repo.dvc("repro", check=False)
    assert failed.returncode != 0
    assert not model.exists()  # DVC removed it before running the stage
    n = N_TRAIN + N_TEST
    assert (
        f"error: params.yaml's split (train_size = {n}, test_size = null) cannot split the {n}"
        f" digits of data/images.npy: scikit-learn's train_test_split says: train_size={n}"
        f" should be either positive and smaller than the number of samples {n} or a float in"
        " the (0, 1) range; DVC removed the stage's previous outputs when it started it:"
        " `dvc checkout train` brings them back\n"
    ) in failed.stderr
    repo.dvc("checkout", "train")
    assert md5(model) == good


# --- the DVC cache ------------------------------------------------------------------------


def cache_object(repo: Repo, md5sum: str) -> Path:
    return repo.root / ".dvc" / "cache" / "files" / "md5" / md5sum[:2] / md5sum[2:]


def locked_md5(repo: Repo, output: str) -> str:
    lock = read_yaml(repo.root / "dvc.lock")
    return next(
        out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"] == output
    )


@pytest.mark.slow
def test_an_output_edited_in_place_leaves_the_cache_intact(tiny_repo):
    repo = tiny_repo
    repo.dvc("repro")
    metrics = repo.root / "outputs" / "metrics.json"
    good = metrics.read_text()
    # What any editor or script may do, and the read-only bit does not stop root.
    with metrics.open("r+") as f:
        f.write(good.replace("0.", "9.", 1))
    locked = locked_md5(repo, "outputs/metrics.json")
    assert md5(cache_object(repo, locked)) == locked
    assert "modified:" in repo.dvc("status").stdout
    repo.dvc("checkout", "--force")
    assert metrics.read_text() == good
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout


# --- the wrong interpreter -----------------------------------------------------------------


@pytest.mark.slow
def test_an_unactivated_shell_is_one_line_not_a_traceback(tiny_repo, tmp_path):
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)  # a Python without the project's packages
    repo = tiny_repo
    repo.env = repo.env | {"PATH": f"{bare / 'bin'}{os.pathsep}{repo.env['PATH']}"}
    failed = repo.dvc("repro", check=False)
    assert failed.returncode != 0
    assert f"exited with {EXIT_USAGE}" in failed.stderr  # DVC's words for the stage's code
    assert (
        f"error: this Python ({bare / 'bin' / 'python'}) is not the project's environment:"
        " numpy is missing;" in failed.stderr
    )
    assert "activate the environment (`. .venv/bin/activate`) or run `make repro`" in failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    assert not (repo.root / "data" / "images.npy").exists()

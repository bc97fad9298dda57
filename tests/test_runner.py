"""The stages' entry point and runner: importing a module does nothing else, a stage runs
only through ``python -m stages <stage>``, and it dies with the process that started it."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from pipeline import paths, runner
from pipeline.errors import EXIT_USAGE, STOP_SIGNALS, UserError
from pipeline.paths import Layout
from tests.project import dvc_stages, wait_for

# The project's packages: the stages, the library they share, the tools and the sweep.
PACKAGES = ("stages", "pipeline", "tools", "sweep")

# Every module of them, but the entry points, which act by design.
MODULES = sorted(
    f"{package}.{path.stem}" if path.stem != "__init__" else package
    for package in PACKAGES
    for path in (paths.ROOT / package).glob("*.py")
    if path.stem != "__main__"
)

# What a user's shell may have set, and the stages' pin would overwrite.
SENTINEL = {"OPENBLAS_NUM_THREADS": "4", "OPENBLAS_CORETYPE": "Zen"}

# Imports each module in turn in one fresh interpreter, each time with the project's own
# modules unloaded first and the environment restored, so that each import runs the
# package's code again; reports what it did to the environment and whether it exited.
# scikit-learn sets two variables for its OpenMP runtime when it loads: its own doing,
# so it is imported first.
IMPORT_EACH = """
import importlib, json, os, sys
import sklearn
packages = sys.argv[1].split(",")
for name in sys.argv[2:]:
    for loaded in [m for m in sys.modules if m.partition(".")[0] in packages]:
        del sys.modules[loaded]
    before = dict(os.environ)
    try:
        importlib.import_module(name)
        exited = None
    except SystemExit as exc:
        exited = str(exc.code)
    after = dict(os.environ)
    changed = {k: [before.get(k), after.get(k)] for k in before.keys() | after.keys()
               if before.get(k) != after.get(k)}
    os.environ.clear()
    os.environ.update(before)
    print(json.dumps({"module": name, "changed": changed, "exited": exited}), flush=True)
"""


@pytest.fixture(scope="module")
def imports() -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "NPY_"))}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, ",".join(PACKAGES), *MODULES],
        cwd=paths.ROOT,
        env=env | SENTINEL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    return {report["module"]: report for report in reports} | {"stderr": result.stderr}


@pytest.mark.parametrize("module", MODULES)
def test_importing_a_module_changes_no_variable_and_never_exits(imports, module):
    assert module in imports, imports["stderr"]
    assert imports[module]["changed"] == {}
    assert imports[module]["exited"] is None


def copy_code(root: Path) -> Layout:
    """The project's code and its small inputs under ``root``: enough to run a stage."""
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("stages", "pipeline"):
        shutil.copytree(paths.ROOT / package, root / package, ignore=ignore)
    for name in ("params.yaml", "requirements.txt", "data/mnist.sha256"):
        (root / name).parent.mkdir(exist_ok=True)
        shutil.copy(paths.ROOT / name, root / name)
    return Layout.under(root)


@pytest.mark.parametrize("stage", paths.STAGES)
def test_running_a_stage_module_directly_says_how_to_run_it(tmp_path, offline, stage):
    files = copy_code(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=tmp_path,
        env=os.environ | {"MNIST_MIRROR": str(tmp_path / "none"), "MNIST_CACHE": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: run this stage as `python -m stages {stage}` (or `dvc repro`):"
        f" `python -m stages.{stage}` loads numpy before its code paths can be pinned\n"
    )
    assert not any(path.exists() for path in files.outputs(stage))


def test_the_entry_point_names_the_stages_it_runs():
    result = subprocess.run(
        [sys.executable, "-m", "stages", "trian"], cwd=paths.ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "python -m stages: error: argument stage: invalid choice: 'trian'"
        " (choose from 'fetch_and_scale', 'train', 'visualize')"
    )


@pytest.mark.parametrize("pinned", [True, False])
def test_where_the_pin_applied_the_stage_checks_what_numpy_and_openblas_loaded(monkeypatch, pinned):
    """The pin's variables can be ignored (a library loaded earlier, another OpenBLAS):
    where it applied, what the libraries really run is asked of them before the stage."""
    import stages.__main__ as entry
    from pipeline import artifacts, cpu

    calls = []
    monkeypatch.setattr(cpu, "confirm_pinned_paths", lambda: calls.append("confirm"))
    monkeypatch.setattr(
        artifacts, "prepare_outputs", lambda targets, folders: calls.append("prepare")
    )
    monkeypatch.setattr(
        entry.importlib,
        "import_module",
        lambda name: type("Stage", (), {"main": staticmethod(lambda: calls.append(name))}),
    )
    entry.run("train", pinned=pinned)
    assert calls == (["confirm"] if pinned else []) + ["prepare", "stages.train"]


# --- what a failed stage says ------------------------------------------------------------


def failing(message: str):
    def main():
        raise UserError(message)

    return main


HINT = (
    "DVC removed the stage's previous outputs when it started it:"
    " `dvc checkout train` brings them back"
)


@pytest.mark.parametrize(
    ("message", "stage", "dvc_stage", "said"),
    [
        ("no data", "train", "train", f"error: no data; {HINT}"),
        ("2 problems:\n  a\n  b", "train", "train", f"error: 2 problems:\n  a\n  b\n{HINT}"),
        ("no data", "train", None, "error: no data"),
        ("no such commit", None, "train", "error: no such commit"),  # a tool, not a stage
    ],
)
def test_a_failure_says_how_to_bring_back_what_dvc_removed(
    message, stage, dvc_stage, said, monkeypatch, caplog
):
    if dvc_stage:
        monkeypatch.setenv("DVC_STAGE", dvc_stage)
    else:
        monkeypatch.delenv("DVC_STAGE", raising=False)
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        with pytest.raises(SystemExit) as exited:
            runner.run_stage(failing(message), stage=stage)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert exited.value.code == EXIT_USAGE
    assert caplog.messages == [said]


# --- a stage dies with the dvc that runs it, and with nothing else ----------------------


# How DVC runs a stage's command (dvc/stage/run.py): its shell (``$SHELL``, else /bin/sh)
# with ``-c``, in a child process that it waits for, with DVC_STAGE set.
STARTER = """
import os, subprocess, sys
env = os.environ | {"DVC_STAGE": "train"}
subprocess.Popen([sys.argv[1], "-c", sys.argv[2]], env=env).communicate()
"""


def test_only_dvc_ties_a_stage_to_its_parent(monkeypatch):
    asked = []
    monkeypatch.setattr(runner, "die_with_parent", lambda parent: asked.append(parent) or True)
    assert runner.die_with_dvc(41, {"DVC_STAGE": "train"}) is True
    assert runner.die_with_dvc(42, {"HOME": "/root"}) is False  # by hand: nothing
    assert asked == [41]


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
@pytest.mark.parametrize(
    "shell",
    [
        "/bin/sh",  # dash: dvc.yaml's `exec` makes the shell the stage
        "/bin/bash",
    ],
)
def test_a_stage_dies_with_the_dvc_that_runs_it(scaled_repo, tmp_path, shell):
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    repo = scaled_repo
    # Train for a long time: a stage that outlived its starter would still be running.
    repo.set_param("max_iter", "1000000")
    repo.set_param("n_iter_no_change", "1000000")
    log = tmp_path / "stage.log"
    command = dvc_stages(repo.root)["train"]["cmd"]
    with log.open("w") as out:
        starter = subprocess.Popen(
            [sys.executable, "-c", STARTER, shell, command],
            cwd=repo.root,
            env=repo.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stages = []
    try:
        wait_for(lambda: "Iteration 2," in log.read_text(), "the stage to train")
        stages = [p for p in psutil.Process(starter.pid).children(recursive=True) if alive(p)]
        assert any("stages" in p.cmdline() or "stages.train" in p.cmdline() for p in stages)
        starter.kill()
        starter.wait()
        wait_for(lambda: not any(alive(p) for p in stages), "the stage to stop", timeout=30)
    finally:
        starter.kill()
        for process in stages:
            if alive(process):
                process.kill()
    outputs = repo.root / "outputs"
    assert sorted(p.name for p in outputs.iterdir()) == [".gitignore"]
    # stdout and stderr share the log, and the stop may land inside a print, between an
    # "Iteration N" line's text and its newline: the message then ends that line.
    text = log.read_text()
    assert text.endswith(f"stopped by SIGTERM: this stage wrote no output; {HINT}\n"), text[-500:]
    assert text.count("stopped by") == 1 and "Traceback" not in text, text[-2000:]


def stage_in(root: Path) -> psutil.Process | None:
    """The train stage that runs in the repository ``root`` (this test's own), if any."""
    for process in psutil.process_iter(["cmdline", "cwd"]):
        if process.info["cwd"] == str(root) and process.info["cmdline"][-3:] == [
            "-m",
            "stages",
            "train",
        ]:
            return process
    return None


# A stage run by hand, by starters that end before it: each must leave it running.
BY_HAND = {
    "nohup_sh": (
        "setsid bash -c 'nohup sh -c \"python -m stages train\" > {log} 2>&1 & sleep 1; exit 0'"
    ),
    "nohup_subshell": (
        "setsid bash -c '( nohup python -m stages train > {log} 2>&1 ) & sleep 1; exit 0'"
    ),
    "thread": (
        "{python} -c 'import subprocess, threading;"
        ' start = lambda: subprocess.Popen(["python", "-m", "stages", "train"],'
        ' stdout=open("{log}", "w"), stderr=subprocess.STDOUT);'
        " t = threading.Thread(target=start); t.start(); t.join()'"
    ),
}


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("how", sorted(BY_HAND))
def test_a_stage_run_by_hand_outlives_the_shell_that_started_it(scaled_repo, tmp_path, how):
    repo = scaled_repo
    repo.set_param("max_iter", "1000000")
    repo.set_param("n_iter_no_change", "1000000")
    log = tmp_path / "stage.log"
    command = BY_HAND[how].format(log=log, python=sys.executable)
    subprocess.run(["bash", "-c", command], cwd=repo.root, env=repo.env, check=True)
    stage = None
    try:
        # The starter has exited; the stage trains on.
        wait_for(lambda: "Iteration 3," in log.read_text(), "the stage to train")
        stage = stage_in(repo.root)
        assert stage is not None and alive(stage), log.read_text()[-500:]
        seen = log.read_text().count("Iteration")
        wait_for(lambda: log.read_text().count("Iteration") > seen + 2, "more iterations")
        assert alive(stage) and "stopped by" not in log.read_text()
    finally:
        if stage is not None and alive(stage):
            stage.kill()
            stage.wait(10)

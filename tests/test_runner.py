"""The stages' entry point: importing a module does nothing else, and a stage runs only
through ``python -m stages <stage>``."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages import paths
from stages.paths import Layout

# Every module under stages/ and sweep/, but the entry points, which act by design.
MODULES = sorted(
    f"{package}.{path.stem}" if path.stem != "__init__" else package
    for package in ("stages", "sweep")
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
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.partition(".")[0] in ("stages", "sweep")]:
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
        [sys.executable, "-c", IMPORT_EACH, *MODULES],
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
    shutil.copytree(paths.ROOT / "stages", root / "stages", ignore=ignore)
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

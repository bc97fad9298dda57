"""dvc.yaml agrees with the code: the paths, imported modules and params each stage reads."""

import ast
from pathlib import Path

import pytest

from pipeline import dvc_api, formats, paths
from pipeline.dvc_api import entry_paths
from tests.project import dvc_stages

STAGES = dvc_stages()
FILES = paths.PROJECT


def rel(path: Path) -> str:
    return path.relative_to(paths.ROOT).as_posix()


def plain(entries) -> set[str]:
    return set(entry_paths(entries))


# The project's own packages: the code a stage runs is the files of these that it imports.
PACKAGES = ("stages", "pipeline", "tools", "sweep")


def code_file(module: str) -> str:
    """The file of a dotted module name: ``pipeline.cpu`` or the package ``pipeline``."""
    package, _, name = module.partition(".")
    return f"{package}/{name or '__init__'}.py"


def project_imports(tree: ast.AST) -> list[str]:
    """The project's modules that ``tree`` imports, dotted, wherever the import is."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in PACKAGES:
            found += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGES):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.partition(".")[0] in PACKAGES]
    return found


def imported_code(stage: str) -> set[str]:
    """The files that ``python -m stages <stage>`` runs: the entry point, the stage's module
    (which it imports by name) and, transitively, every module of the project that they
    import, wherever the import is, each with its package's ``__init__.py``, which Python
    runs before any of the package's modules."""
    seen, todo = set(), ["stages.__main__", f"stages.{stage}"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.append(module.partition(".")[0])
        tree = ast.parse((paths.ROOT / code_file(module)).read_text())
        todo += project_imports(tree)
    return {code_file(module) for module in seen}


def code_deps(stage: str) -> set[str]:
    return {d for d in plain(STAGES[stage]["deps"]) if d.partition("/")[0] in PACKAGES}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_runs_through_the_entry_point(stage):
    # exec: the shell that DVC runs the command with becomes the stage, whose parent is
    # then dvc itself (pipeline/runner.py, die_with_dvc).
    assert STAGES[stage]["cmd"] == f"exec python -m stages {stage}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_depends_on_exactly_the_code_it_imports(stage):
    assert code_deps(stage) == imported_code(stage)


def test_the_walk_follows_imports_into_the_shared_library():
    # schema.py is imported only by config.py and model.py; openml.py only inside a function.
    assert {"pipeline/__init__.py", "pipeline/schema.py"} <= imported_code("train")
    assert "pipeline/openml.py" in imported_code("fetch_and_scale")
    assert "pipeline/openml.py" not in imported_code("train")


def test_dvc_yaml_declares_the_stages_and_outputs_of_the_paths_module():
    # paths.py spells each file once; dvc.yaml is the pipeline's truth: the two agree.
    assert list(STAGES) == list(paths.STAGES)
    outs = {
        stage: plain(spec.get("outs")) | plain(spec.get("metrics")) | plain(spec.get("plots"))
        for stage, spec in STAGES.items()
    }
    assert outs == {stage: set(files.values()) for stage, files in paths.OUTPUTS.items()}
    assert {stage: set(map(rel, FILES.outputs(stage))) for stage in STAGES} == outs


def test_the_layout_names_each_file_once():
    names = [*paths.INPUTS, *(name for files in paths.OUTPUTS.values() for name in files)]
    assert len(names) == len(set(names))
    assert FILES.images == paths.ROOT / "data" / "images.npy"
    assert FILES.outputs("visualize") == [
        paths.ROOT / "outputs" / name
        for name in (
            "weights.png",
            "loss.png",
            "misclassified.png",
            "filters",
            "filmstrip.png",
            "units.png",
        )
    ]
    assert FILES.folders("train") == [paths.ROOT / "outputs" / "epochs"]
    assert FILES.folders("visualize") == [paths.ROOT / "outputs" / "filters"]


def data_deps(stage: str) -> set[str]:
    return plain(STAGES[stage]["deps"]) - code_deps(stage)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_depends_on_the_versions_its_interpreter_is_checked_against(stage):
    # stages/__main__.py refuses packages other than requirements.txt pins: new pins can
    # compute other bytes, so they rerun the stage.
    assert "requirements.txt" in data_deps(stage)


def test_each_stage_depends_on_the_outputs_it_reads():
    assert data_deps("fetch_and_scale") - {"requirements.txt"} == {rel(FILES.checksums)}
    assert data_deps("train") - {"requirements.txt"} == {rel(FILES.images), rel(FILES.labels)}
    assert data_deps("visualize") - {"requirements.txt"} == {
        rel(FILES.weights),
        rel(FILES.weights_by_epoch),
        rel(FILES.units_csv),
        rel(FILES.loss_csv),
        rel(FILES.predictions),
        rel(FILES.images),
    }


def test_each_stage_tracks_exactly_the_params_it_reads():
    # fetch_and_scale does not read the split: changing it must not rewrite the arrays.
    assert STAGES["fetch_and_scale"]["params"] == ["data.source", "data.pixel_dtype"]
    # train passes every key of split to train_test_split and of train to MLPClassifier,
    # and records each epoch as epochs says.
    assert STAGES["train"]["params"] == ["split", "train", "epochs"]
    # visualize tracks the whole file, so that a misspelt key or section is validated too
    assert STAGES["visualize"]["params"] == [{"params.yaml": None}]


def test_the_data_sets_identity_is_a_dependency_of_the_stage_that_checks_it():
    assert rel(FILES.checksums) in plain(STAGES["fetch_and_scale"]["deps"])


def test_metrics_are_cached_and_plots_declared():
    # Cached like every output, so that `dvc checkout` can bring back a failed run's metrics.
    assert STAGES["train"]["metrics"] == ["outputs/metrics.json", "outputs/units.json"]
    loss, per_class, confusion = STAGES["train"]["plots"]
    spec = per_class["outputs/per_class.csv"]
    # Each plot's fields are its file's, as pipeline/formats.py writes them.
    assert {spec["x"], spec["y"]} <= set(formats.PER_CLASS_FIELDS)
    assert (spec["template"], spec["x"], spec["y"]) == ("dot_horizontal", "f1", "digit")
    assert (paths.ROOT / ".dvc" / "plots" / "dot_horizontal.json").is_file()
    assert (loss["outputs/loss.csv"]["x"], loss["outputs/loss.csv"]["y"]) == formats.LOSS_FIELDS
    # Errors only, as a share of each true class: the true class is the rows (y).
    spec = confusion["outputs/predictions.csv"]
    assert {spec["x"], spec["y"]} <= set(formats.PREDICTION_FIELDS)
    assert (spec["template"], spec["x"], spec["y"]) == ("confusion_errors", "predicted", "actual")
    assert (paths.ROOT / ".dvc" / "plots" / "confusion_errors.json").is_file()


def test_each_file_between_stages_is_written_and_read_in_pipeline_formats():
    # The format rule: a file's writer and reader sit side by side in formats.py (or
    # arrays.py, fetch_and_scale's); the stages call them, and spell no file format of
    # their own.
    numpy_io = {"save", "savez", "load", "write_array_header_1_0", "write_array", "loadtxt"}
    for stage in ("fetch_and_scale", "train", "visualize"):
        tree = ast.parse((paths.ROOT / "stages" / f"{stage}.py").read_text())
        called = {
            node.func.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        }
        assert not called & numpy_io, stage


def test_a_stage_depends_on_what_it_runs_and_no_more():
    # An edit of the estimator or of the split reran fetch_and_scale, which hashed its
    # 439 MB of arrays again to record the same bytes.
    assert not {"pipeline/model.py", "pipeline/split.py", "pipeline/config.py"} & code_deps(
        "fetch_and_scale"
    )
    # nor an edit of train's formats, or of the per-epoch record
    assert not {"pipeline/formats.py", "pipeline/epochs.py", "pipeline/units.py"} & code_deps(
        "fetch_and_scale"
    )
    assert "pipeline/model.py" in code_deps("train") and "pipeline/model.py" in code_deps(
        "visualize"
    )
    # An edit of a stage's own module reruns that stage and those after it only.
    for stage in STAGES:
        assert {f"stages/{other}.py" for other in STAGES} & code_deps(stage) == {
            f"stages/{stage}.py"
        }


def test_the_per_epoch_metrics_are_plotted_from_dvclives_folder():
    # DVCLive writes plots/metrics/NAME.tsv in train's epochs folder, its step the epoch:
    # the top-level plot takes the folder, x the step column of formats.py.
    [plot] = dvc_api.read_yaml(paths.ROOT / "dvc.yaml")["plots"]
    [(folder, spec)] = plot.items()
    assert folder == rel(formats.epoch_metric_path(FILES.epochs, "x").parent)
    assert spec["x"] == formats.EPOCH_STEP
    assert rel(FILES.epochs) in plain(STAGES["train"]["outs"])
    # the counts of verdicts are a metrics file; DVCLive's own summary is not
    assert rel(FILES.epochs / "metrics.json") not in plain(STAGES["train"]["metrics"])

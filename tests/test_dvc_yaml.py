"""dvc.yaml agrees with the code: the paths, the imported modules and the params each stage reads."""

import ast
from pathlib import Path

import pytest
import yaml

from stages import paths

DVC_YAML = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def rel(path: Path) -> str:
    return path.relative_to(paths.ROOT).as_posix()


def plain(entries) -> set[str]:
    """Paths or params of a dvc.yaml list, whose entries are strings or one-key dicts."""
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries or []}


def imported_stage_modules(module: str) -> set[str]:
    """``stages/*.py`` files that ``module`` imports, transitively, wherever the import is."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((paths.ROOT / "stages" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "stages":
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stages."):
                todo.append(node.module.removeprefix("stages."))
            elif isinstance(node, ast.Import):
                todo += [a.name.removeprefix("stages.") for a in node.names if a.name.startswith("stages.")]
    return {f"stages/{name}.py" for name in seen}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_runs_its_own_module(stage):
    assert STAGES[stage]["cmd"] == f"python -m stages.{stage}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_depends_on_exactly_the_code_it_imports(stage):
    code_deps = {d for d in plain(STAGES[stage]["deps"]) if d.startswith("stages/")}
    assert code_deps == imported_stage_modules(stage)


def test_outputs_match_the_paths_module():
    outs = {
        stage: plain(spec.get("outs")) | plain(spec.get("metrics")) | plain(spec.get("plots"))
        for stage, spec in STAGES.items()
    }
    assert outs == {
        "fetch_and_scale": {rel(paths.IMAGES), rel(paths.LABELS)},
        "train": {
            rel(paths.MODEL), rel(paths.WEIGHTS), rel(paths.METRICS), rel(paths.LOSS_CSV),
            rel(paths.PREDICTIONS),
        },
        "visualize": {rel(paths.WEIGHTS_PNG), rel(paths.LOSS_PNG), rel(paths.MISCLASSIFIED_PNG)},
    }


def test_each_stage_depends_on_the_outputs_it_reads():
    data = {d for d in plain(STAGES["train"]["deps"]) if not d.startswith("stages/")}
    assert data == {rel(paths.IMAGES), rel(paths.LABELS)}
    data = {d for d in plain(STAGES["visualize"]["deps"]) if not d.startswith("stages/")}
    assert data == {rel(paths.WEIGHTS), rel(paths.LOSS_CSV), rel(paths.PREDICTIONS), rel(paths.IMAGES)}


def test_params_are_whole_sections_where_a_stage_reads_a_section():
    # A whole section is tracked, so a typo'd key changes the stage and reaches validation.
    assert STAGES["fetch_and_scale"]["params"] == ["data"]
    assert STAGES["train"]["params"] == ["data.train_size", "train"]
    # visualize tracks the whole file, so that a misspelt section is validated too
    assert STAGES["visualize"]["params"] == [{"params.yaml": None}]


def test_metrics_are_cached_and_plots_declared():
    # Cached like every output, so that `dvc checkout` can bring back a failed run's metrics.
    assert STAGES["train"]["metrics"] == ["outputs/metrics.json"]
    loss, confusion = STAGES["train"]["plots"]
    assert loss["outputs/loss.csv"]["x"] == "iteration" and loss["outputs/loss.csv"]["y"] == "loss"
    # Errors only, as a share of each true class: the true class is the rows (y).
    spec = confusion["outputs/predictions.csv"]
    assert (spec["template"], spec["x"], spec["y"]) == ("confusion_errors", "predicted", "actual")
    assert (paths.ROOT / ".dvc" / "plots" / "confusion_errors.json").is_file()

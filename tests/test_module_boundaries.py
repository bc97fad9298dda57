"""Where the project's code may reach: DVC's internals only through pipeline/dvc_api.py,
no tool or benchmark through the tests, verify as a package of small modules, and each
benchmark scenario as one record."""

import ast
import dataclasses
from pathlib import Path

import pytest

from pipeline import paths

ROOT = paths.ROOT
# The project's code that is not its tests.
CODE = ("pipeline", "stages", "sweep", "tools", "benchmarks")
DVC_PACKAGES = ("dvc", "dvc_data", "dvc_objects")
VERIFY = ROOT / "tools" / "verify"
MAX_MODULE_LINES = 350


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module that ``path`` imports, wherever the import is (in a function too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def top(module: str) -> str:
    return module.partition(".")[0]


def test_only_dvc_api_imports_dvcs_own_modules():
    importers = {
        path.relative_to(ROOT).as_posix(): sorted(
            m for m in imported(path) if top(m) in DVC_PACKAGES
        )
        for path in python_files(*CODE)
    }
    assert {path: found for path, found in importers.items() if found} == {
        "pipeline/dvc_api.py": importers["pipeline/dvc_api.py"]
    }
    assert importers["pipeline/dvc_api.py"]  # the check looks where DVC is imported


def test_the_tests_read_dvc_yaml_through_dvc_api():
    used = imported(ROOT / "tests" / "project.py")
    assert "pipeline.dvc_api" in used or "pipeline" in used
    assert not {m for m in used if top(m) in ("ruamel", "yaml", *DVC_PACKAGES)}


@pytest.mark.parametrize("folder", ["tools", "benchmarks"])
def test_tools_and_benchmarks_import_nothing_from_the_tests(folder):
    files = python_files(folder)
    assert files
    assert {
        path.relative_to(ROOT).as_posix(): sorted(m for m in imported(path) if top(m) == "tests")
        for path in files
        if any(top(m) == "tests" for m in imported(path))
    } == {}


def test_verify_is_a_package_of_small_modules():
    assert not (ROOT / "tools" / "verify.py").exists()
    assert (VERIFY / "__init__.py").is_file() and (VERIFY / "__main__.py").is_file()
    lengths = {path.name: len(path.read_text().splitlines()) for path in VERIFY.glob("*.py")}
    assert len(lengths) >= 5
    assert {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES} == {}


def test_verify_uses_the_one_home_of_the_published_results():
    used = set().union(*(imported(path) for path in VERIFY.glob("*.py")))
    assert "pipeline" in used  # `from pipeline import published`
    text = (VERIFY / "numbers.py").read_text()
    assert "published.LOSS_TOLERANCE" in text and "published.matching" in text


def test_each_benchmark_scenario_is_one_record():
    from benchmarks import scenarios as module

    scenarios = module.SCENARIOS
    assert scenarios and all(isinstance(s, module.Scenario) for s in scenarios)
    assert dataclasses.is_dataclass(module.Scenario)
    assert module.Scenario.__dataclass_params__.frozen
    keys = [s.key for s in scenarios]
    assert len(set(keys)) == len(keys)
    assert {s.clone for s in scenarios} <= set(module.CLONES)
    assert all(s.command[0] in ("dvc", "python", "stage") for s in scenarios)

    # No other table of the benchmark is keyed by scenario or lists scenarios: each one's
    # name, command, setup and labels live in its record alone (a ratio relates two).
    spread = []
    tables = [
        (path, node)
        for path in python_files("benchmarks")
        for node in ast.parse(path.read_text()).body
    ]
    for path, node in tables:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        name = ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target)
        value = node.value
        if isinstance(value, ast.Dict):
            items = value.keys
        elif isinstance(value, ast.Tuple | ast.List | ast.Set):
            items = value.elts
        else:
            continue
        if any(isinstance(item, ast.Constant) and item.value in keys for item in items):
            spread.append(f"{path.name}: {name}")
    assert spread == []

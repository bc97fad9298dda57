"""The sweep package's shape: a module a job, an import graph without cycles and of few
floors, the environment read once in each process's entry point, the exit codes in one
place."""

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import paths
from sweep.worker import default_work_dir
from tests.project import environment_reads

PACKAGE = paths.ROOT / "sweep"

# The command line, show, the client, the cluster, the worker, what they share, and the
# package's own __init__.
MOST_MODULES = 7
MOST_IMPORTS = 12
MOST_FLOORS = 5

# The modules that a process starts in (python -m sweep, python -m sweep.show, and the
# point's process, python -m sweep.worker): each reads the environment, if at all, once
# in its main.
ENTRY_POINTS = {"__main__", "show", "worker"}


@functools.cache
def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), str(path)) for path in PACKAGE.glob("*.py")}


def imported(tree: ast.Module) -> list[str]:
    """The package's modules that ``tree`` imports, wherever the import is, once per import."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "sweep":
            found += [alias.name for alias in node.names if alias.name in modules()]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sweep."):
            found.append(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found += [a.name.split(".")[1] for a in node.names if a.name.startswith("sweep.")]
    return found


def graph() -> dict[str, set[str]]:
    return {name: set(imported(tree)) for name, tree in modules().items()}


def floors(module: str, graph: dict[str, set[str]], path: tuple[str, ...] = ()) -> int:
    """How many modules the longest chain of imports from ``module`` holds, itself included."""
    assert module not in path, f"an import cycle: {' -> '.join((*path, module))}"
    return 1 + max((floors(m, graph, (*path, module)) for m in graph[module]), default=0)


def test_a_module_a_job():
    assert len(modules()) <= MOST_MODULES, sorted(modules())


def test_the_imports_have_no_cycle_and_few_floors():
    found = graph()
    assert max(floors(module, found) for module in found) <= MOST_FLOORS
    assert sum(len(imported(tree)) for tree in modules().values()) <= MOST_IMPORTS
    assert found["shared"] == set()  # what they share imports none of them


@pytest.mark.parametrize("module", sorted(modules()))
def test_the_environment_is_read_once_in_each_entry_points_main(module):
    reads = environment_reads(modules()[module])
    if module in ENTRY_POINTS:
        assert [function for function, _ in reads] in ([], ["main"]), reads
    else:
        assert reads == [], f"sweep/{module}.py reads the environment at lines {reads}"


def test_the_reads_are_found():
    tree = ast.parse(
        "import os\nfrom os import getenv\n"
        "def f(env=os.environ):\n    return os.environ.get('A')\n"
        "def main():\n    def inner():\n        return os.getenv('B')\n"
    )
    assert environment_reads(tree) == [(None, 2), (None, 3), ("f", 4), ("main", 7)]


def test_a_workers_folder_comes_from_the_environment_it_is_given():
    assert default_work_dir({"XDG_CACHE_HOME": "/scratch"}) == Path("/scratch/mnist-mlp-sweep")
    assert default_work_dir({"HOME": "/home/ann"}) == Path("/home/ann/.cache/mnist-mlp-sweep")


def test_importing_the_sweeps_modules_loads_no_dask():
    # Dask reads DASK_* from the environment and sets up its loggers when it is imported:
    # the sweep imports it where a function needs it, as python -m sweep.show never does.
    code = "import sys, sweep.__main__, sweep.show, sweep.client, sweep.worker, sweep.cluster\n"
    code += "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=paths.ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout == "[]\n"

"""The project as the tests drive it: its dvc.yaml (read by ``pipeline.dvc_api``), its
params.yaml, what `dvc repro` says it ran, and copies of it in git repositories of their
own."""

import ast
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.params_edit import set_param
from pipeline import dvc_api

ROOT = Path(__file__).resolve().parent.parent

# Who commits in the tests' and the benchmark's repositories (and in the experiments DVC
# commits there), whatever the machine's own git config says or lacks.
GITCONFIG = (
    "[user]\n\tname = test\n\temail = test@example.invalid\n[init]\n\tdefaultBranch = main\n"
)


def stages_run(output: str) -> list[str]:
    """The stages that ``dvc repro`` (or ``dvc exp run``) says it ran, in order."""
    return list(dvc_api.ran_stages(output))


def dvc_stages(root: Path = ROOT) -> dict[str, dict]:
    """The stages of ``root``'s dvc.yaml, by name, in the pipeline's order."""
    return dvc_api.stages(root)


def write_home(home: Path) -> Path:
    """A HOME with nothing but a git identity: what a newcomer's machine lacks."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(GITCONFIG, encoding="utf-8")
    return home


class Repo:
    """A copy of the project's files in its own git repository, and commands run in it."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env
        files = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
        for name in filter(None, files):
            source = ROOT / name
            if source.is_file():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, root / name)
        self.git("init", "-q")
        self.git("add", "-A")
        self.git("commit", "-qm", "project")

    def git(self, *args: str) -> str:
        return self.run("git", *args).stdout

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("dvc", *args, check=check)

    def set_param(self, key: str, text: str) -> None:
        set_param(self.root / "params.yaml", key, text)

    def ran_stages(self, result: subprocess.CompletedProcess) -> list[str]:
        return stages_run(result.stdout + result.stderr)


def hermetic_env(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (the environment) with ``home`` as HOME and no system or other git config."""
    env = dict(os.environ if base is None else base)
    for name in ("XDG_CONFIG_HOME", "GIT_CONFIG_GLOBAL", "GIT_DIR", "GIT_WORK_TREE"):
        env.pop(name, None)
    return env | {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}


def wait_for(predicate, what: str, timeout: float = 60):
    """``predicate()``'s first truthy value, polled every 0.05 s; an AssertionError naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# A writer of a temporary file (pipeline/artifacts.py), in a process of its own: it holds
# the file's lock until it ends. ``prefix`` runs it otherwise, in another PID namespace
# (``unshare``) for example.
_WRITER = (
    "import sys, time; from pathlib import Path; from pipeline.artifacts import temp_beside;"
    " temp = temp_beside(Path(sys.argv[1])); temp.path.write_bytes(b'partial');"
    " print(temp.path, flush=True); time.sleep(120)"
)


@contextlib.contextmanager
def live_writer(target: Path, prefix: tuple[str, ...] = ()):
    """A running writer of ``target``'s temporary file; yields the file's path."""
    command = [*prefix, sys.executable, "-c", _WRITER, str(target)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as writer:
        try:
            line = writer.stdout.readline().strip()
            if not line:
                raise OSError(f"{command[0]} started no writer (exit {writer.wait()})")
            yield Path(line)
        finally:
            writer.kill()


def killed_writer(target: Path) -> Path:
    """The temporary file of a writer of ``target`` that was killed (``kill -9``) mid-write."""
    with live_writer(target) as temp:
        pass
    return temp


# What reads or changes the process's environment: the settings rule allows it only in an
# entry point's main.
ENVIRONMENT = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_reads(tree: ast.Module) -> list[tuple[str | None, int]]:
    """Each read of the environment in ``tree``: the top-level function it is in (``None``
    at module level, default arguments included) and its line."""
    reads = []

    def visit(node: ast.AST, function: str | None) -> None:
        is_read = (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ENVIRONMENT
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ENVIRONMENT for alias in node.names)
        )
        if is_read:
            reads.append((function, node.lineno))
        for child in ast.iter_child_nodes(node):
            inside = function
            if function is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                # a function's defaults are evaluated where it is defined
                for default in [*child.args.defaults, *child.args.kw_defaults]:
                    if default is not None:
                        visit(default, None)
                for statement in child.body:
                    visit(statement, child.name)
                continue
            visit(child, inside)

    visit(tree, None)
    return reads

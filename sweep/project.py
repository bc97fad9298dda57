"""The user's repository, as the sweep's client sees it: where it is, the commit the sweep
runs at and its DVC settings, the experiments' names, and the commands run in it."""

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.dvc_api import cache_and_remote, experiments
from pipeline.errors import UserError
from sweep.shared import Secret, hide

log = logging.getLogger(__name__)

# An experiment's name, as DVC takes it: no "/", which git would read as a folder.
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def command_output(
    args: list[str], cwd: Path, check: bool = True, secrets: Iterable[Secret] = ()
) -> str:
    """Run a command in the user's repository; a ``UserError`` with its last line if it fails.

    ``secrets`` are hidden in that message (git quotes a URL that it cannot reach)."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        command = ["dvc", *args[3:5]] if args[1:3] == ["-m", "dvc"] else args[:3]
        raise UserError(hide(f"`{' '.join(command)}` failed: {lines[-1]}", secrets))
    return result.stdout.strip()


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def exp_show(root: Path, rev: str) -> list[dict]:
    """``dvc exp show --json`` for the commit ``rev``."""
    try:
        return json.loads(command_output(dvc("exp", "show", "--json", "--rev", rev), root))
    except json.JSONDecodeError as exc:
        raise UserError(f"dvc exp show --json printed no JSON ({exc})") from None


@dataclass(frozen=True)
class Project:
    """The user's repository: where it is, the commit the sweep runs at, and its settings."""

    root: Path
    base: str
    identity: tuple[str, str] | None
    cache_dir: Path
    dvc_remote: str

    @classmethod
    def discover(cls, cwd: Path) -> "Project":
        toplevel = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True
        )
        if toplevel.returncode != 0 or not (Path(toplevel.stdout.strip()) / ".dvc").is_dir():
            raise UserError(
                f"{cwd} is not in a git repository with DVC: run the sweep in the project"
            )
        root = Path(toplevel.stdout.strip())
        base = command_output(["git", "rev-parse", "HEAD"], root)
        if command_output(["git", "status", "--porcelain", "--untracked-files=no"], root):
            log.warning(
                "warning: uncommitted changes are not part of the sweep: it runs at commit %s",
                base[:7],
            )
        name = command_output(["git", "config", "user.name"], root, check=False)
        email = command_output(["git", "config", "user.email"], root, check=False)
        # DVC's API here: two `dvc` commands would take a second
        cache_dir, dvc_remote = cache_and_remote(root)
        return cls(
            root=root,
            base=base,
            identity=(name, email) if name and email else None,
            cache_dir=cache_dir,
            dvc_remote=dvc_remote,
        )

    def file_at_base(self, path: str) -> bytes | None:
        """The bytes of ``path`` at the base commit, or ``None`` if it has no such file."""
        shown = subprocess.run(
            ["git", "show", f"{self.base}:{path}"], cwd=self.root, capture_output=True
        )
        return shown.stdout if shown.returncode == 0 else None

    def check_git_url(self, url: Secret) -> None:
        """Fail now, not on every worker, if the base commit is not on ``url``."""
        if is_local_path(url.reveal()) and Path(url.reveal()).resolve() == self.root:
            return
        heads = command_output(
            ["git", "ls-remote", url.reveal()], self.root, secrets=[url]
        ).split()[::2]
        for sha in heads:
            reached = subprocess.run(
                ["git", "merge-base", "--is-ancestor", self.base, sha],
                cwd=self.root,
                capture_output=True,
            )
            if reached.returncode == 0:
                return
        raise UserError(
            f"commit {self.base[:7]} is not on {url}, where the workers clone from: push it first"
        )


def experiment_names(prefix: str, count: int, root: Path) -> list[str]:
    """``PREFIX-1`` ... ``PREFIX-count``, as ``dvc exp run --queue --name PREFIX`` names a sweep."""
    names = [f"{prefix}-{i}" for i in range(1, count + 1)]
    valid = (
        EXPERIMENT_NAME.fullmatch(prefix)
        and not subprocess.run(
            ["git", "check-ref-format", f"refs/exps/{names[-1]}"], cwd=root
        ).returncode
    )
    if not valid:
        raise UserError(
            f"--name {prefix!r}: not usable as an experiment's name; use letters, digits,"
            " '-', '_' and '.'"
        )
    return names


def is_local_path(url: str) -> bool:
    """Whether git reads ``url`` as a path (not ``scheme://...`` nor ``[user@]host:path``)."""
    return "://" not in url and ":" not in url.partition("/")[0]


def absolute_url(url: str, cwd: Path) -> str:
    """``url``, a relative path in it made absolute from ``cwd``: the workers clone elsewhere."""
    return os.path.abspath(cwd / Path(url).expanduser()) if is_local_path(url) else url


def pull(project: Project, git_url: Secret, names: list[str]) -> None:
    """Bring the experiments' refs and, from the DVC remote, their outputs into the project."""
    no_cache = [] if project.dvc_remote else ["--no-cache"]
    command_output(
        dvc("exp", "pull", *no_cache, git_url.reveal(), *names), project.root, secrets=[git_url]
    )


def shown_experiments(project: Project) -> dict[str, dict]:
    """``dvc exp show --json`` for the base commit: each experiment's data, by name."""
    return experiments(exp_show(project.root, project.base))

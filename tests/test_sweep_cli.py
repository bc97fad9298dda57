"""The sweep's commands as a user meets them: every mistake refused before a cluster
starts, in one line, exit 2; no secret in any message; ``sweep.show`` is not a stage."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

import sweep.client
from sweep.__main__ import main
from tests.conftest import repo_env
from tests.project import Repo
from tests.test_sweep_connect import closed_port, http_server, silent_server  # noqa: F401

# A value that looks like what it stands for; it must never be printed.
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Repo:
    """A copy of the project, committed: no data, nothing run (nothing here runs)."""
    return Repo(tmp_path_factory.mktemp("cli") / "repo", repo_env())


@pytest.fixture
def started(monkeypatch, project) -> list[int]:
    """Run in the project; a cluster that would start records its size and stops the sweep."""
    from pipeline.errors import UserError

    sizes = []

    def connect(workers, scheduler):
        sizes.append(workers)
        raise UserError("no cluster in this test")

    monkeypatch.chdir(project.root)
    monkeypatch.setattr(sweep.client, "connect", connect)
    return sizes


def refused(args: list[str], capsys) -> str:
    """The one line that ``python -m sweep ARGS`` printed, with exit code 2."""
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["-S", "train.nosuchkey=1"],
            "error: train.nosuchkey=1: params.yaml has 1 problem: train.nosuchkey: unknown key;",
        ),
        (["-S", "=1"], "error: -S '=1': no KEY before '='; expected [FILE:]KEY=VALUE"),
        (
            ["-S", "missing.yaml:train.max_iter=3"],
            "error: -S 'missing.yaml:train.max_iter=3': missing.yaml is not in the commit the"
            " sweep runs at",
        ),
        (
            ["-S", "train.max_iter=3", "--name", "a/b"],
            "error: --name 'a/b': not usable as an experiment's name",
        ),
        (["-S", "train.max_iter=3", "--env", "=x"], "error: --env =...: expected NAME or"),
        (
            ["-S", "train.max_iter=3", "--scheduler", "foo://h:1"],
            "error: --scheduler foo://h:1: unknown scheme 'foo'",
        ),
        (
            ["-S", "train.max_iter=3", "--workers", "2", "--tls-cert", "c.pem"],
            "error: --tls-cert: for a tls:// --scheduler only",
        ),
    ],
)
def test_a_mistake_is_one_line_before_any_cluster_starts(args, message, started, capsys):
    assert main(args) == 2
    assert started == []
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message) and len(err.splitlines()) == 1, err


def test_local_workers_are_at_most_one_a_point(started, capsys):
    assert main(["-S", "train.max_iter=3", "--workers", "24"]) == 2
    assert started == [1]
    assert "sweep of 1 point at commit " in capsys.readouterr().err


@pytest.mark.parametrize(
    "server, reason",
    [
        ("closed_port", "cannot connect (Connection refused)"),
        ("silent_server", "no Dask scheduler answered within 1 s"),
        ("http_server", "Dask scheduler"),
    ],
)
def test_an_unreachable_scheduler_is_one_line(
    server, reason, request, project, monkeypatch, capsys
):
    monkeypatch.chdir(project.root)
    port = request.getfixturevalue(server)
    line = refused(
        ["-S", "train.max_iter=3", "--scheduler", f"127.0.0.1:{port}", "--connect-timeout", "1"],
        capsys,
    )
    assert line.startswith(f"error: --scheduler tcp://127.0.0.1:{port}: ") and reason in line


def test_a_git_url_token_is_never_printed(request, started, capsys):
    port = request.getfixturevalue("closed_port")
    url = f"http://sweeper:{SECRET}@127.0.0.1:{port}/project.git"
    line = refused(["-S", "train.max_iter=3", "--git-url", url], capsys)
    assert line.startswith(f"error: `git ls-remote http://***@127.0.0.1:{port}/project.git`")
    assert SECRET not in line


def test_env_values_are_never_printed_even_in_a_bug(started, monkeypatch, capsys):
    # A bug of ours (here: discovering the project crashes) prints a traceback: its text,
    # which quotes the value, has it hidden all the same.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)

    def crash(cwd):
        raise RuntimeError(f"unexpected: {os.environ['AWS_SECRET_ACCESS_KEY']}")

    monkeypatch.setattr(sweep.client.Project, "discover", crash)
    assert main(["-S", "train.max_iter=3", "--env", "AWS_SECRET_ACCESS_KEY"]) == 1
    _, err = capsys.readouterr()
    assert "Traceback" in err and "RuntimeError: unexpected: ***" in err
    assert SECRET not in err


def show(project: Repo, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sweep.show", *args],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_show_is_a_command_not_a_stage(project):
    # A mistake: exit 2, as for python -m sweep.
    process = show(project, "--rev", "no-such-rev")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: `dvc exp show` failed:")

    # Ctrl-C while it waits for `dvc exp show`, as in a pager: no word of a stage's outputs.
    process = show(project)
    try:
        deadline = time.monotonic() + 120
        while not any("exp" in child.cmdline() for child in children(process.pid)):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signal.SIGINT, err
    assert err == "stopped by SIGINT\n"


def children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []

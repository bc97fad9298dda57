"""The DVC internals that the project uses (``pipeline.dvc_api``), checked against the installed
DVC: an upgrade that changes one of them fails here, by name, not in a sweep.
(``dvc exp show --json``, which ``experiments`` and ``rows`` read, is checked end to end
by tests/test_sweep_cluster.py.)"""

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import dvc_api


def test_grid_is_dvcs_expansion_of_s_flags():
    assert dvc_api.grid(["train.alpha=1e-5,1e-4", "other.yaml:model.depth=3", "x=[1,2]"]) == [
        {"params.yaml": ["train.alpha=1e-05", "x=[1,2]"], "other.yaml": ["model.depth=3"]},
        {"params.yaml": ["train.alpha=0.0001", "x=[1,2]"], "other.yaml": ["model.depth=3"]},
    ]
    with pytest.raises(dvc_api.FlagError, match="missing EQUAL"):
        dvc_api.grid(["train.alpha"])
    assert dvc_api.override_keys(["train.alpha=1e-05", "+a.b=1", "~c"]) == [
        "train.alpha",
        "a.b",
        "c",
    ]


def test_apply_overrides_writes_a_params_file_as_exp_run_does(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  alpha: 0.0001\n  hidden_layer_sizes: [50]\n")
    dvc_api.apply_overrides(params, ["train.alpha=1e-05", "++train.new=2"])
    from ruamel.yaml import YAML

    assert YAML(typ="safe").load(params.read_text()) == {
        "train": {"alpha": 1e-05, "hidden_layer_sizes": [50], "new": 2}
    }
    with pytest.raises(dvc_api.FlagError, match=r"Could not override 'train\.nosuchkey'"):
        dvc_api.apply_overrides(params, ["train.nosuchkey=1"])


def test_the_cache_and_the_remote_of_a_repository(tmp_path):
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    cache, remote = dvc_api.cache_and_remote(tmp_path)
    assert (cache, remote) == (tmp_path / ".dvc" / "cache", "")
    assert dvc_api.use_cache(tmp_path, tmp_path / "shared") == ""
    assert dvc_api.cache_and_remote(tmp_path) == (tmp_path / "shared", "")
    assert "shared" in (tmp_path / ".dvc" / "config.local").read_text()


def test_experiment_refs_are_named_as_dvc_names_them():
    from dvc.repo.experiments.refs import ExpRefInfo

    base = "0123456789abcdef0123456789abcdef01234567"
    assert dvc_api.exp_ref(base, "lr-1") == str(ExpRefInfo(base, "lr-1"))


@pytest.mark.slow
def test_what_dvc_repro_prints_when_a_stage_runs_and_when_it_fails(tmp_path):
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  hello:\n    cmd: echo hello\n  broken:\n    cmd: exit 3\n"
    )

    def repro(stage: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dvc", "repro", stage],
            cwd=Path(tmp_path),
            capture_output=True,
            text=True,
        )

    ran = repro("hello")
    assert ran.returncode == 0, ran.stderr
    assert dvc_api.ran_stages(ran.stdout) == ("hello",)
    failed = repro("broken")
    assert failed.returncode != 0
    assert dvc_api.ran_stages(failed.stdout) == ("broken",)
    [error] = dvc_api.error_lines(failed.stdout + failed.stderr)
    assert error.startswith("failed to reproduce 'broken'")

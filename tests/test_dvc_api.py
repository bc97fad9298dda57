"""The DVC internals that the project uses (``pipeline.dvc_api``), checked against the installed
DVC: an upgrade that changes one of them fails here, by name, not in a sweep.
(``dvc exp show --json``, which ``experiments`` and ``rows`` read, is checked end to end
by tests/test_sweep_cluster.py.)"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import dvc_api, paths


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


# --- dvc.yaml and dvc.lock, as DVC itself reads them ------------------------------------------


def test_yaml_is_parsed_by_dvcs_own_parser(tmp_path):
    path = tmp_path / "params.yaml"
    assert dvc_api.parse_yaml("a: 012\nb: yes\nc: 1:00\n", path) == {
        "a": 12,
        "b": "yes",
        "c": "1:00",
    }
    assert dvc_api.parse_yaml("", path) == {}
    with pytest.raises(dvc_api.DvcFileError, match=r"params\.yaml: not valid YAML \(line 2: "):
        dvc_api.parse_yaml("a: [1\nb: 2\n", path)


@pytest.mark.parametrize(
    "text",
    [
        "a: 012",
        "a: 0o12",
        "a: yes",
        "a: True",
        "a: 1e-5",
        "a: 1.0e-5",
        "a: .inf",
        "a: 1:00",
        "a: ~",
    ],
)
def test_the_stages_reader_of_params_parses_as_dvc_does(text):
    # The stages cannot import DVC: their reader (pipeline/params.py) must give what DVC's
    # own parser gives, or a value DVC records would be read as another by a stage.
    from pipeline.params import parse_yaml

    assert repr(parse_yaml(text, "params.yaml")) == repr(dvc_api.parse_yaml(text, Path("p")))


def test_the_projects_stages_outputs_and_commands_are_the_ones_dvc_reads():
    from dvc.repo import Repo

    with Repo(str(paths.ROOT)) as repo:
        stages = {stage.name: stage for stage in repo.index.stages}
        outs = sorted(str(out.def_path) for stage in stages.values() for out in stage.outs)
        commands = {name: stage.cmd for name, stage in stages.items()}
    assert list(dvc_api.stages(paths.ROOT)) == list(stages)
    assert sorted(dvc_api.declared_outputs(paths.ROOT)) == outs
    for name, argv in dvc_api.stage_commands(paths.ROOT).items():
        assert shlex.split(commands[name])[-len(argv) :] == argv


def test_the_deps_of_the_projects_lock_are_the_ones_dvc_records():
    from dvc.repo import Repo

    data = dvc_api.read_yaml(paths.ROOT / "dvc.lock")
    with Repo(str(paths.ROOT)) as repo:
        recorded = {str(dep.def_path) for stage in repo.index.stages for dep in stage.deps}
    assert dvc_api.lock_deps(data) == recorded
    assert [name for name, _, _ in dvc_api.lock_stages(paths.ROOT / "dvc.lock", data)] == list(
        dvc_api.stages(paths.ROOT)
    )


@pytest.mark.parametrize(
    "data, said",
    [
        ([1], "expected a mapping with schema and stages, found a list"),
        ({"schema": "1.0"}, "schema 1.0, expected '2.0'"),
        ({"schema": "2.0", "stages": [1]}, "stages is a list, expected a mapping by stage name"),
        ({"schema": "2.0", "stages": {"train": 3}}, "stage train is int 3, expected a mapping"),
    ],
)
def test_a_lock_that_dvc_3_did_not_write_is_one_line(data, said):
    with pytest.raises(dvc_api.DvcFileError, match=re.escape(f"dvc.lock: {said}")):
        dvc_api.lock_stages(Path("dvc.lock"), data)


def test_entries_of_a_stage_list_are_paths_with_options():
    assert dvc_api.entry("a.npy") == ("a.npy", {})
    assert dvc_api.entry({"b.json": {"cache": False}}) == ("b.json", {"cache": False})
    assert dvc_api.entry({"c.csv": None}) == ("c.csv", {})
    assert dvc_api.entry_paths(["a", {"b": {"x": 1}}, {"c": None}]) == ["a", "b", "c"]
    assert dvc_api.listed({"outs": None}, "outs", "here") == []
    with pytest.raises(dvc_api.DvcFileError, match="here: outs is a mapping, expected a list"):
        dvc_api.listed({"outs": {"a": 1}}, "outs", "here")


def test_shown_is_one_line_without_dvcs_colours():
    assert dvc_api.shown("\x1b[31mERROR\x1b[39m: no") == "ERROR: no"
    assert dvc_api.shown("two\nlines") == "'two\\nlines'"
    assert dvc_api.shown("x" * 300) == "x" * 197 + "..."
    assert dvc_api.kind_of(None) == "nothing"
    assert dvc_api.kind_of(12) == "int 12"


# --- the repository: its cache and its status ---------------------------------------------------


def test_the_local_cache_of_a_repository(tmp_path):
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    cache = tmp_path / ".dvc" / "cache"
    assert dvc_api.local_cache(tmp_path) == (cache, cache / "files" / "md5")
    with pytest.raises(dvc_api.DvcError):
        dvc_api.local_cache(tmp_path / "no project")


def test_status_is_dvcs_and_names_a_changed_dep(tmp_path, monkeypatch):
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "in.txt").write_text("one\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  copy:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n"
    )
    monkeypatch.chdir(tmp_path)  # where DVC's reproduce looks for its targets
    with Repo(str(tmp_path)) as repo:
        repo.reproduce()
    assert dvc_api.status(tmp_path) == {}
    (tmp_path / "in.txt").write_text("two\n")
    assert dvc_api.status(tmp_path) == {"copy": [{"changed deps": {"in.txt": "modified"}}]}

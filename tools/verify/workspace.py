"""The workspace against dvc.lock: each output's bytes, and DVC's status of the deps,
params and commands."""

from pathlib import Path

from pipeline import dvc_api
from tools.verify.files import NotHashed, Resized, directory_md5, file_md5
from tools.verify.lock import Output, recorded_deps
from tools.verify.report import BadInput, Check, labelled


def check_outputs(root: Path, outputs: list[Output], within: tuple[Path, ...]) -> list[Check]:
    """Each output in the workspace under ``root`` against dvc.lock, and dvc.lock
    against dvc.yaml."""
    checks = []
    for out in outputs:
        if out.md5 is None:
            text = f"{out.path}: dvc.yaml declares it (stage {out.stage}), dvc.lock does not"
            checks.append(labelled(False, "unlocked", text + " record it"))
            continue
        if not out.declared:
            text = f"{out.path}: dvc.lock records it (stage {out.locked_stage}), dvc.yaml"
            checks.append(labelled(False, "undeclared", text + " declares no such output"))
            continue
        if out.locked_stage != out.stage:
            text = f"{out.path}: dvc.yaml declares it in stage {out.stage}, dvc.lock records"
            checks.append(labelled(False, "unlocked", f"{text} it under {out.locked_stage}"))
            continue
        path = root / out.path
        try:
            if path.is_dir() and not path.is_symlink() and out.md5.endswith(".dir"):
                actual = directory_md5(path, within)
            else:
                actual = file_md5(path, within, size=out.size)
        except Resized as sizes:
            text = f"{out.path}: {sizes.actual} bytes, dvc.lock {sizes.locked} (not hashed)"
            checks.append(labelled(False, "different", text))
            continue
        except NotHashed as why:
            checks.append(
                labelled(False, why.label, out.path + (f": {why.detail}" if why.detail else ""))
            )
            continue
        if actual == out.md5:
            checks.append(labelled(True, "identical", out.path))
        else:
            checks.append(
                labelled(False, "different", f"{out.path}: md5 {actual}, dvc.lock {out.md5}")
            )
    return checks


def lock_against_workspace(root: Path, lock_path: Path, outputs: list[Output]) -> list[Check]:
    """What DVC's own status finds changed since dvc.lock was written in the deps, params
    and commands (a dep that dvc.yaml has and dvc.lock does not record included; the
    outputs are this tool's own check, and a stage's output that another stage reads is
    one of them): a failing line each. Nothing for a lock that records no deps at all."""
    recorded = recorded_deps(lock_path)
    if not recorded:
        return []
    produced = {out.path for out in outputs}
    try:
        status = dvc_api.status(root)
    except dvc_api.DvcBusy:
        raise BadInput(
            "another dvc command is running in this project (it holds DVC's lock), and DVC"
            " cannot tell the project's status meanwhile: run verify once it ends"
        ) from None
    except dvc_api.DvcError as exc:
        raise BadInput(f"DVC cannot tell the project's status: {exc}") from None
    checks = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):  # "changed command", "always changed"
                checks.append(labelled(False, "changed", f"stage {stage}: {change}"))
                continue
            for dep, what in change.get("changed deps", {}).items():
                if dep in produced:  # the outputs' own check says it
                    continue
                if isinstance(what, dict):
                    what = ", ".join(f"{key} {value}" for key, value in what.items())
                checks.append(labelled(False, "changed", f"stage {stage}: {dep} {what}"))
    return checks

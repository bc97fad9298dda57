"""The install is the one that made dvc.lock: every package pinned with its hashes, set-up
refusing anything else, and the stages refusing an interpreter that has other versions."""

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline import interpreter, paths
from pipeline.dvc_api import entry_paths
from tests.project import dvc_stages

REQUIREMENTS = paths.ROOT / "requirements.txt"


def requirement_blocks(text: str) -> list[str]:
    """Each requirement of a pip-compile output with its continuation lines."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line and not line.lstrip().startswith("#")]


def test_every_requirement_is_pinned_exactly_with_sha256_hashes():
    blocks = requirement_blocks(REQUIREMENTS.read_text())
    assert len(blocks) > 100
    for block in blocks:
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+ ", block), block
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), block


def test_setup_installs_with_hashes_required_and_lock_generates_them():
    makefile = (paths.ROOT / "Makefile").read_text()
    assert (
        "pip install --quiet --require-hashes --no-deps --requirement requirements.txt" in makefile
    )
    assert "pip-compile --quiet --generate-hashes" in makefile


def dummy_wheel(folder: Path) -> Path:
    """A minimal wheel of a package ``dummy`` 1.0, built here."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "dummy-1.0-py3-none-any.whl"
    files = {
        "dummy.py": b"VALUE = 1\n",
        "dummy-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: dummy\nVersion: 1.0\n",
        "dummy-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("dummy-1.0.dist-info/RECORD,,")
    files["dummy-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


@pytest.mark.parametrize("tampered", [False, True], ids=["as-locked", "hash-altered"])
def test_pip_installs_a_locked_file_and_refuses_an_altered_one(tmp_path, tampered):
    wheel = dummy_wheel(tmp_path / "index")  # the index serves exactly this file
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if tampered:
        digest = ("0" if digest[0] != "0" else "1") + digest[1:]
    (tmp_path / "requirements.txt").write_text(f"dummy==1.0 --hash=sha256:{digest}\n")
    # --isolated: no pip configuration of this machine's; --no-index: nothing leaves it.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "install", "--no-index", "--find-links",
         str(wheel.parent), "--require-hashes", "--no-deps", "--target", str(tmp_path / "site"),
         "--requirement", str(tmp_path / "requirements.txt")],
        capture_output=True, text=True,
    )  # fmt: skip
    if tampered:
        assert result.returncode != 0
        assert "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE" in result.stderr
        assert not (tmp_path / "site" / "dummy.py").exists()
    else:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "site" / "dummy.py").read_text() == "VALUE = 1\n"


# --- the stages' interpreter check -----------------------------------------------------


def test_pins_are_read_from_a_hashed_requirements_file(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text(
        "# header\nnumpy==2.4.6 \\\n    --hash=sha256:ab\n    # via scipy\n"
        "scikit-learn==1.9.1 \\\n    --hash=sha256:cd\nruamel-yaml==0.19.1\n"
    )
    assert interpreter.pinned_versions(path) == {
        "numpy": "2.4.6",
        "scikit-learn": "1.9.1",
        "ruamel-yaml": "0.19.1",
    }


def test_installed_versions_come_from_the_dist_info_folders(tmp_path):
    for name in ("numpy-2.4.6.dist-info", "scikit_learn-1.9.1.dist-info", "notes.txt"):
        (tmp_path / name).mkdir()
    found = interpreter.installed_versions([str(tmp_path), str(tmp_path / "missing")])
    assert found == {"numpy": "2.4.6", "scikit-learn": "1.9.1"}


def test_mismatches_name_each_missing_or_other_version():
    pins = {"numpy": "2.4.6", "scikit-learn": "1.9.1", "joblib": "1.6.0", "dvc": "3.67.1"}
    installed = {"numpy": "1.26.4", "scikit-learn": "1.9.1", "dvc": "9.9"}
    assert interpreter.mismatches(pins, installed) == [
        "numpy is 1.26.4, requirements.txt pins 2.4.6",
        "joblib is missing",
    ]  # dvc is not a package the stages run


def test_this_environment_is_the_project_s():
    assert interpreter.check_interpreter(REQUIREMENTS) is None


def test_every_package_the_stages_import_is_one_the_interpreter_check_covers():
    """A package a stage imports but the check leaves out is neither checked against
    requirements.txt nor installed for the emulated platforms (psutil was missing there).
    The stages' code is what dvc.yaml lists as their deps: test_dvc_yaml.py checks that
    this is every module they import."""
    import ast
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    imported = set()
    # The code the stages run, as dvc.yaml lists it (pipeline/dvc_api.py, say, is not).
    modules = {
        path
        for stage in dvc_stages().values()
        for path in entry_paths(stage["deps"])
        if path.endswith(".py")
    }
    assert "pipeline/model.py" in modules
    for module in sorted(paths.ROOT / path for path in modules):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.partition(".")[0])
    third_party = {
        re.sub(r"[-_.]+", "-", dist).lower()
        for name in imported - set(sys.stdlib_module_names) - {"stages", "pipeline"}
        for dist in distributions.get(name, [name])
    }
    covered = {re.sub(r"[-_.]+", "-", name).lower() for name in interpreter.STAGE_PACKAGES}
    assert third_party - covered == set()

"""The tests depend on nothing of the caller's environment: each sets what it needs."""

import subprocess
import sys

import pytest

from pipeline import paths

# Every variable of the README's Settings table, and DVC's, set to a strange value.
HOSTILE = {
    "MNIST_MIRROR": "http://[::bad",
    "MNIST_PUBLIC_MIRRORS": "perhaps",
    "MNIST_DOWNLOAD_SECONDS": "soon",
    "MNIST_CACHE": "relative/cache",
    "MNIST_CHECKSUMS": "/nonexistent/SHA256SUMS",
    "XDG_CACHE_HOME": "/nonexistent/xdg",
    "PYTHONHASHSEED": "7",
    "DVC_STAGE": "train",
    "DVC_ROOT": "/nonexistent",
}


@pytest.mark.slow
def test_the_environment_sensitive_tests_pass_in_a_hostile_environment():
    # Each of these once read the caller's MNIST_*, XDG_CACHE_HOME or HOME.
    chosen = [
        "tests/test_download.py::test_cache_folder_comes_from_mnist_cache_else_the_user_cache",
        "tests/test_download.py::test_stale_temporaries_of_killed_downloads_are_removed",
        "tests/test_stages.py",
        "tests/test_runner.py::test_a_failure_says_how_to_bring_back_what_dvc_removed",
        "tests/test_config.py",
    ]
    env = {"PATH": f"{paths.ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": "/nonexistent"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", *chosen],
        cwd=paths.ROOT,
        env=env | HOSTILE,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout.splitlines()[-1]

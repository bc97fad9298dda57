"""The same bytes on every x86-64 CPU with AVX2: the pin of numpy's and OpenBLAS's code
paths (pipeline/cpu.py), proven by making this machine act like others."""

import os
import subprocess
import sys

import pytest

from pipeline import cpu, paths
from tests.machines import SIMULATED_MACHINES, assert_every_machine_reproduces_the_lock, needs_pin

HASWELL_FLAGS = frozenset(
    [
        "fpu",
        "sse2",
        "ssse3",
        "sse4_1",
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "bmi1",
        "bmi2",
        "abm",
        "movbe",
    ]
)

# A fit on the tests' tiny shapes, printing the md5 of the first layer's weights. Run in
# a fresh interpreter, with or without pinning first as a stage's entry point does.
FIT = """
import hashlib, warnings
import numpy as np
from sklearn.neural_network import MLPClassifier
rng = np.random.default_rng(0)
X, y = rng.integers(0, 256, (60, 784)) / 255, np.arange(60) % 10
warnings.simplefilter("ignore")
model = MLPClassifier(hidden_layer_sizes=(50,), max_iter=5, solver="sgd", random_state=1).fit(X, y)
print(hashlib.md5(model.coefs_[0].tobytes()).hexdigest())
"""


# --- the pin itself -----------------------------------------------------------------------


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx avx2 fma\nbugs\t\t: spectre\n")
    assert cpu.cpu_flags(cpuinfo) == {"fpu", "avx", "avx2", "fma"}
    assert cpu.cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    ("machine", "flags", "reason"),
    [
        ("x86_64", HASWELL_FLAGS, None),
        ("AMD64", HASWELL_FLAGS, None),
        ("x86_64", HASWELL_FLAGS - {"avx2", "fma"}, "this CPU lacks avx2, fma"),
        ("aarch64", frozenset({"asimd", "fp"}), "this CPU is aarch64, not x86-64"),
        ("arm64", frozenset(), "this CPU is arm64, not x86-64"),
        ("x86_64", frozenset(), "this system does not report its CPU's features"),
    ],
)
def test_which_cpus_can_run_the_pinned_paths(machine, flags, reason):
    assert cpu.why_not_pinnable(machine, flags) == reason


def test_the_pin_overrides_the_users_choices_and_clears_what_numpy_refuses():
    environ = {
        "OPENBLAS_CORETYPE": "SkylakeX",
        "OPENBLAS_NUM_THREADS": "8",
        "NPY_DISABLE_CPU_FEATURES": "X86_V4",
        "PATH": "/bin",
    }
    assert cpu.pin_float_paths(environ, machine="x86_64", flags=HASWELL_FLAGS) is True
    assert environ == {
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_NUM_THREADS": "1",
        "NPY_ENABLE_CPU_FEATURES": "X86_V3",
        "PATH": "/bin",
    }


def test_where_the_pin_cannot_apply_one_line_says_so_and_nothing_changes(capsys):
    environ = {"OPENBLAS_CORETYPE": "ARMV8"}
    assert cpu.pin_float_paths(environ, machine="aarch64", flags=frozenset({"asimd"})) is False
    assert environ == {"OPENBLAS_CORETYPE": "ARMV8"}
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("note: this CPU is aarch64, not x86-64, so numpy and OpenBLAS cannot")
    assert "outputs will differ from it in their last bits (`make verify`" in err


def run_python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=paths.ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@needs_pin
def test_a_stage_process_runs_the_pinned_kernels_whatever_the_environment_asks():
    env = os.environ | SIMULATED_MACHINES["OpenBLAS SkylakeX kernels, 3 threads"]
    env |= SIMULATED_MACHINES["numpy without AVX-512"]
    code = (
        "from pipeline import cpu\ncpu.pin_float_paths()\n"
        "import numpy, scipy.linalg, threadpoolctl\n"
        "import numpy._core._multiarray_umath as m\n"
        "blas = threadpoolctl.threadpool_info()\n"
        "print(sorted({(i['architecture'], i['num_threads']) for i in blas}))\n"
        "print([t for t in m.__cpu_dispatch__ if m.__cpu_features__[t]])\n"
    )
    blas, dispatch = run_python(code, env).splitlines()
    # numpy's and scipy's OpenBLAS both
    assert blas == "[('Haswell', 1)]"
    assert dispatch == "['X86_V3']"


@needs_pin
@pytest.mark.slow
def test_the_simulated_machines_differ_without_the_pin_and_agree_with_it():
    """The test below can fail: unpinned, these machines compute other bits."""
    unpinned, pinned = set(), set()
    for extra in [{}, *SIMULATED_MACHINES.values()]:
        env = {k: v for k, v in os.environ.items() if k not in cpu.PINNED} | extra
        unpinned.add(run_python(FIT, env))
        pinned.add(run_python("from pipeline import cpu\ncpu.pin_float_paths()\n" + FIT, env))
    assert len(unpinned) >= 3, unpinned
    assert len(pinned) == 1, pinned


# --- end to end: dvc repro --force on every simulated machine leaves dvc.lock as it was ---


@needs_pin
@pytest.mark.slow
def test_tiny_data_gives_the_same_bytes_on_every_simulated_machine(tiny_repo):
    tiny_repo.dvc("repro")
    assert_every_machine_reproduces_the_lock(tiny_repo, (tiny_repo.root / "dvc.lock").read_bytes())

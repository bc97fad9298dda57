"""The same bytes on every x86-64 CPU with AVX2: the pin of numpy's and OpenBLAS's code
paths (pipeline/cpu.py), proven by making this machine act like others."""

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cpu, paths
from tests.machines import SIMULATED_MACHINES, assert_every_machine_reproduces_the_lock, needs_pin
from tests.test_report import not_installed

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
# a fresh interpreter, with or without the pin first.
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

# CPUID's answers, (leaf, register): value, as qemu's emulated Westmere gives them, and as
# a Haswell does (every flag of the pinned paths, and SSE2 in leaf 1's edx).
WESTMERE_CPUID = {(0x1, "ecx"): 0x82982203, (0x1, "edx"): 0x0789FBFF, (0x80000001, "ecx"): 0x1}
HASWELL_CPUID = {
    (0x1, "ecx"): 0x7FFAFBBF,
    (0x1, "edx"): 0xBFEBFBFF,
    (0x7, "ebx"): 0x000027AB,
    (0x80000001, "ecx"): 0x00000021,
}
OS_SAVES_AVX = 0b111  # XCR0: x87, SSE and AVX state


@pytest.mark.parametrize(
    ("registers", "xcr0", "flags"),
    [
        (WESTMERE_CPUID, 0, {"sse2"}),
        (HASWELL_CPUID, OS_SAVES_AVX, cpu.REQUIRED_FLAGS | {"sse2"}),
        # An OS that does not save the AVX registers: Linux would not list these either.
        (HASWELL_CPUID, 0b011, {"sse2", "movbe", "bmi1", "bmi2", "abm"}),
    ],
)
def test_cpu_flags_are_decoded_from_what_cpuid_answers(registers, xcr0, flags):
    assert cpu.decode_flags(registers, xcr0) == flags


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not Path("/proc/cpuinfo").is_file(),
    reason="compares with Linux's /proc/cpuinfo on x86-64",
)
def test_on_a_real_cpu_cpuid_agrees_with_linux():
    linux = next(
        frozenset(line.partition(":")[2].split())
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("flags")
    )
    assert cpu.cpu_flags() == linux & cpu.FLAG_BITS.keys()


def test_no_machine_code_runs_on_another_cpu_nor_where_memory_cannot_be_executable(monkeypatch):
    def refused(code):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cpu, "run_machine_code", refused)
    if platform.machine().lower() in cpu.X86_64:
        with pytest.raises(cpu.Unasked):
            cpu.cpu_flags()
        assert cpu.why_not_pinnable_here() == (
            "this system refuses to execute the few bytes that ask the CPU for its features"
            " (Permission denied)"
        )
    else:
        assert cpu.why_not_pinnable_here() == f"this CPU is {platform.machine()}, not x86-64"
    monkeypatch.setattr(cpu, "run_machine_code", lambda code: pytest.fail("ran machine code"))
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert cpu.cpu_flags() == frozenset()
    # Off Linux, as before: no pin, so no promise of dvc.lock's bytes.
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cpu.cpu_flags() == frozenset()


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


def test_the_pin_overrides_the_users_choices_says_so_and_clears_what_numpy_refuses(capsys):
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
    assert capsys.readouterr().err == (
        "note: ignoring OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_NUM_THREADS=8,"
        " NPY_DISABLE_CPU_FEATURES=X86_V4: the stages run the code paths that made dvc.lock"
        " (OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 NPY_ENABLE_CPU_FEATURES=X86_V3)\n"
    )


@pytest.mark.parametrize("environ", [{}, dict(cpu.PINNED), {"NPY_DISABLE_CPU_FEATURES": ""}])
def test_the_pin_is_silent_where_it_overrides_nothing(environ, capsys):
    assert cpu.pin_float_paths(environ, machine="x86_64", flags=HASWELL_FLAGS) is True
    assert capsys.readouterr().err == ""


def test_where_the_pin_cannot_apply_one_line_says_so_and_nothing_changes(capsys):
    environ = {"OPENBLAS_CORETYPE": "ARMV8"}
    assert cpu.pin_float_paths(environ, machine="aarch64", flags=frozenset({"asimd"})) is False
    assert environ == {"OPENBLAS_CORETYPE": "ARMV8"}
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("note: this CPU is aarch64, not x86-64, so numpy and OpenBLAS cannot")
    assert "outputs will differ from it in their last bits (`make verify`" in err


# --- in a process of its own: what numpy and OpenBLAS really load ---------------------------

# The pin's module, imported as any module is: importing it does nothing else.
LOAD_CPU = "from pipeline import cpu\n"
# What the process loaded: OpenBLAS's kernels and threads (numpy's and scipy's), and the
# targets that numpy's dispatch enabled.
LOADED = (
    "import numpy, scipy.linalg, threadpoolctl\n"
    "import numpy._core._multiarray_umath as m\n"
    "blas = threadpoolctl.threadpool_info()\n"
    "print(sorted({(i['architecture'], i['num_threads']) for i in blas}))\n"
    "print([t for t in m.__cpu_dispatch__ if m.__cpu_features__[t]])\n"
)


def unpinned_env(**extra: str) -> dict[str, str]:
    """This process's environment without the pin's variables (an import may have set
    them here), plus ``extra``."""
    names = {*cpu.PINNED, *cpu.CLEARED}
    return {k: v for k, v in os.environ.items() if k not in names} | extra


def run_python(
    code: str, env: dict[str, str], prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*prefix, sys.executable, "-c", code],
        cwd=paths.ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result


@needs_pin
def test_a_pinned_process_runs_the_pinned_kernels_whatever_the_environment_asks():
    env = os.environ | SIMULATED_MACHINES["OpenBLAS SkylakeX kernels, 3 threads"]
    env |= SIMULATED_MACHINES["numpy without AVX-512"]
    code = LOAD_CPU + "cpu.pin_float_paths()\n" + LOADED + "print(cpu.confirm_pinned_paths())\n"
    result = run_python(code, env)
    blas, dispatch, confirmed = result.stdout.splitlines()
    # numpy's and scipy's OpenBLAS both
    assert blas == "[('Haswell', 1)]"
    assert dispatch == "['X86_V3']"
    assert confirmed == "True"
    assert result.stderr.startswith(
        "note: ignoring OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_NUM_THREADS=3,"
        " NPY_DISABLE_CPU_FEATURES=X86_V4 AVX512_ICL AVX512_SPR: the stages run"
    )
    assert result.stderr.count("\n") == 1


@needs_pin
def test_what_was_loaded_is_read_from_the_libraries_not_from_the_environment():
    env = unpinned_env(
        OPENBLAS_CORETYPE="Sandybridge",
        OPENBLAS_NUM_THREADS="3",
        NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    )
    code = (
        LOAD_CPU
        + "import scipy.linalg\n"
        + "print(cpu.why_pinned_paths_not_loaded())\n"
        + "print(cpu.confirm_pinned_paths())\n"
    )
    result = run_python(code, env)
    reason, confirmed = result.stdout.splitlines()
    assert re.fullmatch(
        r"numpy dispatches to its baseline only, not X86_V3"
        r"(; libscipy_openblas\S*\.so runs Sandybridge kernels on \d+ threads){2}",
        reason,
    ), reason
    assert confirmed == "False"
    assert result.stderr == (
        f"note: numpy and OpenBLAS were loaded with other code paths than the pinned ones"
        f" ({reason}; were they imported before the pin?): outputs may differ from dvc.lock"
        " in their last bits\n"
    )


@needs_pin
def test_a_pin_after_numpy_loaded_is_not_taken_for_one():
    # The variables come too late: pin_float_paths must say False, as the kernels show.
    env = unpinned_env(**SIMULATED_MACHINES["OpenBLAS SkylakeX kernels, 3 threads"])
    code = "import numpy\n" + LOAD_CPU + "print(cpu.pin_float_paths())\n"
    result = run_python(code, env)
    assert result.stdout == "False\n"
    assert result.stderr.count("\n") == 1
    assert re.search(r"openblas\S*\.so runs SkylakeX kernels on \d+ threads", result.stderr)


QEMU_X86_64 = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="asks an x86-64 CPU")
def test_under_memory_deny_write_execute_the_cpu_is_still_asked():
    # prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN), as hardened services set: a page both
    # writable and executable is refused, and the CPU was "a system that does not report
    # its features", so the stages ran unpinned.
    code = (
        "import ctypes, mmap\n"
        "if ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0: print('no MDWE'); raise SystemExit\n"
        "try: mmap.mmap(-1, 4096, prot=7); print('writable code allowed')\n"
        "except OSError: pass\n" + LOAD_CPU + "print(sorted(cpu.cpu_flags()))\n"
    )
    result = run_python(code, unpinned_env())
    if result.stdout.strip() == "no MDWE":
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 and later)")
    linux = {flag for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("flags") for flag in line.split(":")[1].split()}  # fmt: skip
    assert result.stdout.splitlines() == [str(sorted(linux & cpu.FLAG_BITS.keys()))]


@pytest.mark.parametrize(
    ("environ", "dropped"),
    [
        ({"OPENBLAS_CORETYPE": "Haswell"}, ["OPENBLAS_CORETYPE=Haswell"]),
        ({"OPENBLAS_CORETYPE": "SkylakeX"}, ["OPENBLAS_CORETYPE=SkylakeX"]),
        ({"OPENBLAS_CORETYPE": "Nehalem"}, []),
        ({"OPENBLAS_CORETYPE": "Piledriver"}, ["OPENBLAS_CORETYPE=Piledriver"]),  # rc 132
        ({"OPENBLAS_CORETYPE": "BULLDOZER"}, ["OPENBLAS_CORETYPE=BULLDOZER"]),
        ({"OPENBLAS_CORETYPE": "NoSuchFamily"}, ["OPENBLAS_CORETYPE=NoSuchFamily"]),
        ({"NPY_ENABLE_CPU_FEATURES": "X86_V3"}, ["NPY_ENABLE_CPU_FEATURES=X86_V3"]),
        ({"NPY_ENABLE_CPU_FEATURES": "SSE41 AVX2"}, ["NPY_ENABLE_CPU_FEATURES=SSE41 AVX2"]),
        ({"NPY_ENABLE_CPU_FEATURES": "SSE42"}, []),
        (
            {"NPY_ENABLE_CPU_FEATURES": "SSE42", "NPY_DISABLE_CPU_FEATURES": "SSE41"},
            ["NPY_ENABLE_CPU_FEATURES=SSE42", "NPY_DISABLE_CPU_FEATURES=SSE41"],
        ),
        ({"OPENBLAS_NUM_THREADS": "4"}, []),
    ],
)
def test_where_the_pin_cannot_apply_settings_this_cpu_cannot_run_are_dropped(environ, dropped):
    westmere = frozenset({"sse2"})  # no AVX at all
    kept = dict(environ)
    assert cpu.drop_unrunnable_settings(kept, westmere) == dropped
    assert kept == {k: v for k, v in environ.items() if f"{k}={v}" not in dropped}


@pytest.mark.skipif(platform.machine() != "x86_64", reason="emulates an x86-64 CPU on one")
def test_on_an_emulated_westmere_cpu_the_users_unrunnable_settings_are_dropped():
    # Each crashed the stage: an illegal instruction (rc 132), numpy's traceback, numpy's
    # "cannot be set simultaneously".
    if QEMU_X86_64 is None:
        not_installed(
            "no qemu-x86_64 to emulate a CPU without AVX2: apt-get install qemu-user-static"
        )
    code = (
        LOAD_CPU
        + "print(cpu.pin_float_paths())\n"
        + "import numpy, threadpoolctl\n"
        + "print(sorted({i['architecture'] for i in threadpoolctl.threadpool_info()}))\n"
    )
    settings = {
        "OPENBLAS_CORETYPE": "Haswell",
        "NPY_ENABLE_CPU_FEATURES": "X86_V3",
        "NPY_DISABLE_CPU_FEATURES": "AVX512F",
    }
    env = unpinned_env(**settings)
    result = run_python(code, env, prefix=(QEMU_X86_64, "-cpu", "Westmere"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["False", "['Nehalem']"]
    [note] = result.stderr.splitlines()
    assert note.endswith(
        "; dropped OPENBLAS_CORETYPE=Haswell, NPY_ENABLE_CPU_FEATURES=X86_V3,"
        " NPY_DISABLE_CPU_FEATURES=AVX512F, which this CPU cannot run"
    )


@pytest.mark.skipif(platform.machine() != "x86_64", reason="emulates an x86-64 CPU on one")
def test_on_an_emulated_westmere_cpu_the_pin_says_so_and_pins_nothing():
    # qemu's user mode runs this one process on an emulated Westmere (no AVX), while
    # /proc/cpuinfo still shows the host's flags, AVX2 included.
    if QEMU_X86_64 is None:
        not_installed(
            "no qemu-x86_64 to emulate a CPU without AVX2: apt-get install qemu-user-static"
        )
    code = (
        LOAD_CPU
        + "import os\n"
        + "print(cpu.pin_float_paths())\n"
        + "print(os.environ.get('OPENBLAS_CORETYPE'), os.environ.get('NPY_ENABLE_CPU_FEATURES'))\n"
        + "import numpy, threadpoolctl\n"
        + "print(sorted({i['architecture'] for i in threadpoolctl.threadpool_info()}))\n"
    )
    result = run_python(code, unpinned_env(), prefix=(QEMU_X86_64, "-cpu", "Westmere"))
    assert result.stdout.splitlines() == ["False", "None None", "['Nehalem']"]
    assert result.stderr.startswith(
        "note: this CPU lacks abm, avx, avx2, bmi1, bmi2, f16c, fma, movbe, so numpy and"
        " OpenBLAS cannot run the AVX2 code paths that made dvc.lock"
    )
    assert result.stderr.count("\n") == 1


@needs_pin
@pytest.mark.slow
def test_the_simulated_machines_differ_without_the_pin_and_agree_with_it():
    """The test below can fail: unpinned, these machines compute other bits."""
    unpinned, pinned = set(), set()
    for extra in [{}, *SIMULATED_MACHINES.values()]:
        env = unpinned_env(**extra)
        unpinned.add(run_python(FIT, env).stdout.strip())
        pinned.add(run_python(LOAD_CPU + "cpu.pin_float_paths()\n" + FIT, env).stdout.strip())
    assert len(unpinned) >= 3, unpinned
    assert len(pinned) == 1, pinned


# --- end to end: dvc repro --force on every simulated machine leaves dvc.lock as it was ---


@needs_pin
@pytest.mark.slow
def test_tiny_data_gives_the_same_bytes_on_every_simulated_machine(tiny_repo):
    tiny_repo.dvc("repro")
    assert_every_machine_reproduces_the_lock(tiny_repo, (tiny_repo.root / "dvc.lock").read_bytes())

"""Pin numpy's and OpenBLAS's floating-point code paths, so that dvc.lock holds on every
x86-64 CPU with AVX2, at any core count.

numpy's OpenBLAS is built for many CPUs at once and picks its kernels when it loads
(SkylakeX on an AVX-512 CPU, Haswell or Zen on AVX2 ones), and numpy dispatches its own
loops by CPU too. Kernels of different families add in different orders, so the trained
weights differed in their last bits from one CPU to the next, and with them the hashes in
dvc.lock. Pinned to the AVX2 family, which every x86-64 CPU since Intel Haswell (2013)
and AMD Zen (2017) runs, the bytes are the same on all of them. OpenBLAS also runs on
one thread: its single-threaded path for small products adds in another order than its
threaded one (the tests' 60-digit batches gave other bits on 1 thread than on 2 to 8),
so a fixed count is what makes the result independent of the machine's cores.

Both libraries read these variables once, when they load: ``pin_float_paths`` must run
before numpy is imported. ``stages/__init__.py`` calls it, so every stage passes here.
"""

import os
import platform
import sys
from collections.abc import MutableMapping
from pathlib import Path

# OpenBLAS's kernel family and thread count, and numpy's highest dispatch target:
# x86-64-v3, i.e. AVX2, FMA, BMI1/2, F16C, LZCNT and MOVBE. Set whatever the user had, so
# that a stray OPENBLAS_CORETYPE cannot change the result either.
PINNED = {
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": "1",
    "NPY_ENABLE_CPU_FEATURES": "X86_V3",
}
# numpy refuses to load when both of its variables are set: the pin decides alone.
CLEARED = ("NPY_DISABLE_CPU_FEATURES",)
# What the pinned paths execute, as Linux names the CPU flags (abm is LZCNT). Forcing
# either on a CPU without them would crash (OpenBLAS) or refuse to load (numpy).
REQUIRED_FLAGS = frozenset({"avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "abm", "movbe"})
X86_64 = frozenset({"x86_64", "amd64"})

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags as Linux reports them; empty where it cannot be read."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def why_not_pinnable(machine: str, flags: frozenset[str]) -> str | None:
    """Why the pinned code paths cannot run on this CPU, or None if they can."""
    if machine.lower() not in X86_64:
        return f"this CPU is {machine or 'unknown'}, not x86-64"
    if not flags:
        return "this system does not report its CPU's features"
    missing = sorted(REQUIRED_FLAGS - flags)
    if missing:
        return f"this CPU lacks {', '.join(missing)}"
    return None


def why_not_pinnable_here() -> str | None:
    """Why the pinned code paths cannot run on this machine, or None if they can."""
    return why_not_pinnable(platform.machine(), cpu_flags())


def pin_float_paths(
    environ: MutableMapping[str, str] = os.environ,
    *,
    machine: str | None = None,
    flags: frozenset[str] | None = None,
) -> bool:
    """Set the variables that pin the code paths; True if they apply on this CPU.

    Where they cannot, one line on stderr says that the outputs will differ from
    dvc.lock in their last bits, and nothing is changed.
    """
    reason = why_not_pinnable(
        platform.machine() if machine is None else machine,
        cpu_flags() if flags is None else flags,
    )
    if reason:
        print(
            f"note: {reason}, so numpy and OpenBLAS cannot run the AVX2 code paths that"
            " made dvc.lock: outputs will differ from it in their last bits"
            " (`make verify` checks the published numbers instead)",
            file=sys.stderr,
        )
        return False
    if "numpy" in sys.modules and any(environ.get(k) != v for k, v in PINNED.items()):
        print(
            "note: numpy was loaded before the stages package, too late to pin its code"
            " paths: outputs may differ from dvc.lock in their last bits",
            file=sys.stderr,
        )
    environ.update(PINNED)
    for name in CLEARED:
        environ.pop(name, None)
    return True

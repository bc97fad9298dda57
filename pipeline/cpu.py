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

Whether the CPU runs those paths is asked of the CPU itself (CPUID, in this process), not
read from ``/proc/cpuinfo``: under an emulator such as qemu's user mode that file
describes the host, whose AVX2 the emulated CPU may lack, and a pin there would crash
OpenBLAS or stop numpy from loading. A child process would not do either: an emulator
that runs only this process leaves its children on the host's CPU.

Both libraries read the variables once, when they load. The stages' entry point calls
``pin_float_paths`` before anything imports numpy, and ``confirm_pinned_paths`` once the
stage's modules are loaded, which checks what OpenBLAS and numpy really chose.
"""

import ctypes
import mmap
import os
import platform
import sys
from collections.abc import Mapping, MutableMapping
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

# Where CPUID reports each flag: (leaf, register, bit). Every x86-64 CPU has SSE2: a CPU
# that answered reports at least that, and no flag at all means that it was not asked.
FLAG_BITS = {
    "sse2": (0x1, "edx", 26),
    "fma": (0x1, "ecx", 12),
    "movbe": (0x1, "ecx", 22),
    "avx": (0x1, "ecx", 28),
    "f16c": (0x1, "ecx", 29),
    "bmi1": (0x7, "ebx", 3),
    "avx2": (0x7, "ebx", 5),
    "bmi2": (0x7, "ebx", 8),
    "abm": (0x80000001, "ecx", 5),
}
OSXSAVE_BIT = 27  # leaf 1, ecx: the OS enabled XGETBV
YMM_STATE = 0b110  # XCR0: the OS saves the SSE and AVX registers on a context switch
# These use the AVX registers: like Linux, report them only where the OS saves those.
NEEDS_YMM_STATE = frozenset({"avx", "avx2", "fma", "f16c"})

# x86 machine code of a function that takes no argument and returns one register of
# CPUID(leaf, subleaf): push rbx; mov eax, leaf; mov ecx, subleaf; cpuid; mov eax, REG;
# pop rbx; ret. Without arguments and REX prefixes, it runs alike under every calling
# convention and in 32-bit mode.
MOVE_TO_EAX = {"eax": b"", "ebx": b"\x89\xd8", "ecx": b"\x89\xc8", "edx": b"\x89\xd0"}
# xor ecx, ecx; xgetbv; ret: XCR0's low half. Only valid where OSXSAVE is set.
XGETBV = b"\x31\xc9\x0f\x01\xd0\xc3"


def run_machine_code(code: bytes) -> int:
    """Call ``code`` as a C function returning a 32-bit unsigned int.

    The code is written to an anonymous file (``memfd_create``) and mapped from it
    readable and executable, never writable: a page that is writable and executable at
    once, which a kernel's memory-deny-write-execute refuses (``prctl(PR_SET_MDWE)``, as
    hardened services and some container profiles set), is never asked for, as a shared
    library's code is mapped. Raises OSError where even that is refused (a kernel or
    security module that forbids executable mappings of anonymous files).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
    ]  # fmt: skip
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.memfd_create("cpuid", os.MFD_CLOEXEC)
    try:
        os.write(fd, code.ljust(mmap.PAGESIZE, b"\xc3"))
        protection = mmap.PROT_READ | mmap.PROT_EXEC
        address = libc.mmap(None, mmap.PAGESIZE, protection, mmap.MAP_PRIVATE, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(fd)
    try:
        return ctypes.CFUNCTYPE(ctypes.c_uint32)(address)()
    finally:
        libc.munmap(address, mmap.PAGESIZE)


def cpuid(leaf: int, register: str, subleaf: int = 0) -> int:
    """One register of the CPUID instruction, as this CPU (or its emulator) answers it."""
    code = (
        b"\x53\xb8"
        + leaf.to_bytes(4, "little")
        + b"\xb9"
        + subleaf.to_bytes(4, "little")
        + b"\x0f\xa2"
        + MOVE_TO_EAX[register]
        + b"\x5b\xc3"
    )
    return run_machine_code(code)


def decode_flags(registers: Mapping[tuple[int, str], int], xcr0: int) -> frozenset[str]:
    """The flags of ``FLAG_BITS`` set in CPUID's ``registers`` ((leaf, register): value).

    A leaf the CPU does not have is absent from ``registers``. ``xcr0`` is 0 where the OS
    did not enable XGETBV.
    """
    flags = {
        name
        for name, (leaf, register, bit) in FLAG_BITS.items()
        if registers.get((leaf, register), 0) >> bit & 1
    }
    if xcr0 & YMM_STATE != YMM_STATE:
        flags -= NEEDS_YMM_STATE
    return frozenset(flags)


def cpu_flags() -> frozenset[str]:
    """The CPU's flags of ``FLAG_BITS``, asked of the CPU that runs this process.

    Empty where that is not done: a CPU that is not x86-64, or a system other than Linux
    (where dvc.lock's bytes are not promised: macOS and Windows build numpy's libraries
    otherwise). ``Unasked`` where the system refuses to run the question's machine code.
    """
    if platform.machine().lower() not in X86_64 or sys.platform != "linux":
        return frozenset()
    try:
        highest = cpuid(0x0, "eax")
        highest_extended = cpuid(0x80000000, "eax")
        registers = {
            (leaf, register): cpuid(leaf, register)
            for leaf, register, _ in FLAG_BITS.values()
            if leaf <= highest or 0x80000000 < leaf <= highest_extended
        }
        osxsave = registers.get((0x1, "ecx"), 0) >> OSXSAVE_BIT & 1
        xcr0 = run_machine_code(XGETBV) if osxsave else 0
    except OSError as exc:
        raise Unasked(
            f"this system refuses to execute the few bytes that ask the CPU for its features"
            f" ({exc.strerror or exc})"
        ) from None
    return decode_flags(registers, xcr0)


class Unasked(Exception):
    """The CPU could not be asked for its features: whether it runs the pinned code paths
    is unknown, so they are not pinned."""


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
    """Why the pinned code paths cannot run on this machine (or cannot be known to), or
    None if they can."""
    try:
        return why_not_pinnable(platform.machine(), cpu_flags())
    except Unasked as exc:
        return str(exc)


# What OpenBLAS's x86-64 kernel families execute beyond SSE2, as Linux names the flags:
# forcing one on a CPU without them ends in an illegal instruction. "fma4" (AMD's, which
# FLAG_BITS does not ask for) keeps AMD's Bulldozer line dropped wherever the pin cannot
# apply. A family not named here is taken to need AVX unless it is in NO_AVX_CORETYPES.
NO_AVX_CORETYPES = frozenset(
    {"katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn",
     "dunnington", "nehalem", "opteron", "opteron_sse3", "barcelona", "bobcat", "nano"}
)  # fmt: skip
CORETYPE_NEEDS = {
    "bulldozer": {"avx", "fma4"},
    "piledriver": {"avx", "fma", "fma4"},
    "steamroller": {"avx", "fma", "fma4"},
    "excavator": {"avx", "avx2", "fma", "fma4"},
    "sandybridge": {"avx"},
    "haswell": {"avx", "avx2", "fma"},
    "zen": {"avx", "avx2", "fma"},
    "skylakex": {"avx", "avx2", "fma", "avx512"},
    "cooperlake": {"avx", "avx2", "fma", "avx512"},
    "sapphirerapids": {"avx", "avx2", "fma", "avx512"},
}
# numpy's x86 features and groups that need AVX or later (numpy's baseline is SSE3).
# "avx512" is not among FLAG_BITS: a CPU that cannot run the pin lacks AVX2, and so
# AVX-512 too, and the AVX-512 families and features are always dropped there.
NUMPY_NEEDS = {
    "AVX": {"avx"},
    "F16C": {"f16c"},
    "FMA3": {"fma"},
    "AVX2": {"avx2"},
    "X86_V3": REQUIRED_FLAGS,
    "AVX512F": {"avx512"},
    "AVX512CD": {"avx512"},
    "AVX512_SKX": {"avx512"},
    "AVX512_ICL": {"avx512"},
    "AVX512_SPR": {"avx512"},
    "X86_V4": {"avx512"},
}


def drop_unrunnable_settings(environ: MutableMapping[str, str], flags: frozenset[str]) -> list[str]:
    """Remove from ``environ`` the user's settings that ask for code this x86-64 CPU (of
    ``flags``) cannot run, and return them as ``NAME=value``: an OPENBLAS_CORETYPE of a
    family it lacks the instructions of, an NPY_ENABLE_CPU_FEATURES naming a feature it
    lacks, and numpy's two variables set together, which numpy refuses to load with."""
    dropped = []
    coretype = environ.get("OPENBLAS_CORETYPE", "").strip().lower()
    needs = CORETYPE_NEEDS.get(coretype, set() if coretype in NO_AVX_CORETYPES else {"avx"})
    if coretype and needs - flags:
        dropped.append("OPENBLAS_CORETYPE")
    wanted = environ.get("NPY_ENABLE_CPU_FEATURES", "").replace(",", " ").split()
    if any(NUMPY_NEEDS.get(name.upper(), set()) - flags for name in wanted):
        dropped.append("NPY_ENABLE_CPU_FEATURES")
    both = ("NPY_ENABLE_CPU_FEATURES", "NPY_DISABLE_CPU_FEATURES")
    if all(environ.get(name) for name in both):
        dropped += [name for name in both if name not in dropped]
    return [f"{name}={environ.pop(name)}" for name in dropped]


def overridden_settings(environ: Mapping[str, str]) -> list[str]:
    """The user's settings in ``environ`` that the pin replaces, as ``NAME=value``."""
    return [
        f"{name}={environ[name]}"
        for name in (*PINNED, *CLEARED)
        if environ.get(name) and environ[name] != PINNED.get(name)
    ]


def pin_float_paths(
    environ: MutableMapping[str, str] = os.environ,
    *,
    machine: str | None = None,
    flags: frozenset[str] | None = None,
) -> bool:
    """Set the variables that pin the code paths; True if they apply in this process.

    Where the CPU cannot run them, one line on stderr says that the outputs will differ
    from dvc.lock in their last bits, and nothing is changed. Settings of the user's that
    the pin replaces are named in one line. If numpy is already loaded in this process,
    the variables come too late: what it and OpenBLAS loaded decides (a line says when
    they differ).
    """
    machine = platform.machine() if machine is None else machine
    try:
        flags = cpu_flags() if flags is None else flags
    except Unasked as exc:
        print(
            f"note: {exc}, so whether it runs the AVX2 code paths that made dvc.lock cannot"
            " be known, and they are not pinned: outputs may differ from dvc.lock in their"
            " last bits (`make verify` checks the published numbers instead)",
            file=sys.stderr,
        )
        return False
    reason = why_not_pinnable(machine, flags)
    if reason:
        dropped = drop_unrunnable_settings(environ, flags) if machine.lower() in X86_64 else []
        print(
            f"note: {reason}, so numpy and OpenBLAS cannot run the AVX2 code paths that"
            " made dvc.lock: outputs will differ from it in their last bits"
            " (`make verify` checks the published numbers instead)"
            + (f"; dropped {', '.join(dropped)}, which this CPU cannot run" if dropped else ""),
            file=sys.stderr,
        )
        return False
    overridden = overridden_settings(environ)
    environ.update(PINNED)
    for name in CLEARED:
        environ.pop(name, None)
    if environ is os.environ and "numpy" in sys.modules:
        # Too late for this process's libraries: what they loaded decides.
        return confirm_pinned_paths()
    if overridden:
        pinned = " ".join(f"{k}={v}" for k, v in PINNED.items())
        print(
            f"note: ignoring {', '.join(overridden)}: the stages run the code paths that"
            f" made dvc.lock ({pinned})",
            file=sys.stderr,
        )
    return True


def why_pinned_paths_not_loaded() -> str | None:
    """What numpy and the loaded OpenBLAS libraries run instead of the pinned paths, or
    None if they run those: read from the libraries themselves (threadpoolctl, numpy's
    dispatch table), not from the environment. Loads numpy if it is not loaded yet.
    """
    import numpy._core._multiarray_umath as umath
    from threadpoolctl import threadpool_info

    problems = []
    dispatch = [t for t in umath.__cpu_dispatch__ if umath.__cpu_features__.get(t)]
    if dispatch != [PINNED["NPY_ENABLE_CPU_FEATURES"]]:
        problems.append(
            f"numpy dispatches to {' '.join(dispatch) or 'its baseline only'},"
            f" not {PINNED['NPY_ENABLE_CPU_FEATURES']}"
        )
    for lib in threadpool_info():
        if lib.get("internal_api") != "openblas":
            continue
        kernels, threads = lib.get("architecture"), lib.get("num_threads")
        if (kernels or "").lower() != PINNED["OPENBLAS_CORETYPE"].lower() or threads != int(
            PINNED["OPENBLAS_NUM_THREADS"]
        ):
            problems.append(
                f"{Path(lib['filepath']).name} runs {kernels} kernels on {threads} threads"
            )
    return "; ".join(problems) or None


def confirm_pinned_paths() -> bool:
    """True if this process runs the pinned paths; else one line on stderr says what it runs.

    For a process that pinned them (``pin_float_paths`` returned True), once numpy and
    the stage's modules are loaded.
    """
    problem = why_pinned_paths_not_loaded()
    if problem:
        print(
            f"note: numpy and OpenBLAS were loaded with other code paths than the pinned ones"
            f" ({problem}; were they imported before the pin?): outputs may differ from"
            " dvc.lock in their last bits",
            file=sys.stderr,
        )
        return False
    return True

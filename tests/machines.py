"""Other machines, as this one can act them out, and the check that a reproduction on
each of them gives the same bytes."""

from pathlib import Path

import pytest

from pipeline import cpu
from tools.verify.files import md5_of as md5

# A 1-core container, a 4-core box, a user's (or a CI image's) own choice of OpenBLAS
# kernels, and numpy on a CPU without AVX-512.
SIMULATED_MACHINES = {
    "1 thread": {"OPENBLAS_NUM_THREADS": "1"},
    "4 threads": {"OPENBLAS_NUM_THREADS": "4"},
    "OpenBLAS Sandybridge kernels": {"OPENBLAS_CORETYPE": "Sandybridge"},
    "OpenBLAS SkylakeX kernels, 3 threads": {
        "OPENBLAS_CORETYPE": "SkylakeX",
        "OPENBLAS_NUM_THREADS": "3",
    },
    "numpy without AVX-512": {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
}

PINNABLE = cpu.why_not_pinnable_here() is None
needs_pin = pytest.mark.skipif(not PINNABLE, reason="this CPU cannot run the pinned code paths")


def outputs(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): md5(p)
        for folder in ("data", "outputs")
        for p in sorted((root / folder).iterdir())
        if p.suffix in {".npy", ".npz", ".joblib", ".csv", ".json", ".png"}
    }


def assert_every_machine_reproduces_the_lock(repo, lock: bytes, *, forced: tuple = ()) -> None:
    """``dvc repro --force`` under each simulated machine gives ``lock`` and the same outputs.

    With ``forced``, only those stages are forced, and ``dvc repro`` then runs whatever
    their outputs changed: on the real data, train is the stage whose numbers a machine
    could change (fetch_and_scale divides by 255, exactly on every CPU, and the tiny data's
    test forces every stage on every machine), and it costs a fraction of the whole.
    """
    expected = outputs(repo.root)
    base_env = repo.env
    differing = {}
    try:
        for name, extra in SIMULATED_MACHINES.items():
            repo.env = base_env | extra
            if forced:
                repo.dvc("repro", "--force", "--single-item", *forced)
                repo.dvc("repro")
            else:
                repo.dvc("repro", "--force")
            if (repo.root / "dvc.lock").read_bytes() != lock or outputs(repo.root) != expected:
                differing[name] = outputs(repo.root)
    finally:
        repo.env = base_env
    assert differing == {}, f"expected {expected}"

"""The three stages of the MNIST MLP-weights pipeline and the small modules they share.

Every stage runs as ``python -m stages.<name>``, so this runs before any of them imports
numpy or anything else. It refuses an interpreter that is not the project's environment
(``stages/interpreter.py``), then pins numpy's and OpenBLAS's floating-point code paths
(``stages/cpu.py``), so that the outputs are the same bytes on every x86-64 CPU with AVX2.
"""

import sys
from pathlib import Path

from stages.cpu import pin_float_paths
from stages.interpreter import check_interpreter

_problem = check_interpreter(Path(__file__).resolve().parent.parent / "requirements.txt")
if _problem:
    sys.exit(_problem)

# False where the CPU cannot run the pinned code paths (a line on stderr said so).
FLOAT_PATHS_PINNED = pin_float_paths()

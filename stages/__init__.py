"""The three stages of the MNIST MLP-weights pipeline and the small modules they share.

Importing the package pins numpy's and OpenBLAS's floating-point code paths first
(``stages/cpu.py``): every stage runs as ``python -m stages.<name>``, so this runs before
any of them loads numpy, and the outputs are the same bytes on every x86-64 CPU with AVX2.
"""

from stages.cpu import pin_float_paths

# False where the CPU cannot run the pinned code paths (a line on stderr said so).
FLOAT_PATHS_PINNED = pin_float_paths()

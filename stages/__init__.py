"""The three stages of the MNIST MLP-weights pipeline and the small modules they share.

Each stage runs as ``python -m stages <stage>`` (``stages/__main__.py``), which sets up
the process before the stage's module, and numpy with it, is imported. Importing any
module here only defines things.
"""

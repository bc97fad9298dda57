"""Tools for the pipeline's user, run by hand: ``python -m tools.verify`` (``make verify``)
checks a reproduction against dvc.lock, the DVC cache and the published numbers."""

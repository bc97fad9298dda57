"""Verify a reproduction: the outputs against dvc.lock, the DVC cache against its own
hashes, and the published numbers of the example's version that params.yaml describes.

``python -m tools.verify`` (``make verify``) reports, one line each:

- every output that dvc.yaml declares (outs, metrics and plots): identical to what
  dvc.lock records, different, missing, unreadable, not a file, outside the project, or
  absent from dvc.lock; and every output of dvc.lock that dvc.yaml does not declare;
- every object of the DVC cache that the workspace's dvc.lock refers to (a directory's
  listing and each file it lists included), hashed again: intact, missing, unreadable,
  not a file or corrupt. DVC never checks its cache, so a corrupt object would be
  checked out and trained on as if it were good. A corrupt one is moved aside into the
  folder ``corrupt`` of the cache's own directory (the same file system; nothing outside
  the cache is ever moved), so that the next ``dvc repro`` rebuilds it instead of using it;
- where the outputs differ from dvc.lock on a CPU that cannot run the pinned code paths
  (``pipeline/cpu.py``), the losses and accuracies against scikit-learn's published ones,
  within ``published.LOSS_TOLERANCE`` and ``ACCURACY_TOLERANCE``, of whichever version
  params.yaml describes (``pipeline/published.py``: the example as published in 2017,
  or the stable gallery's since 2021); for other params, the bytes only. Where the CPU runs them, a
  reproduction gives dvc.lock's bytes, and nothing less passes.

``--numbers`` checks only the published numbers of the outputs on disk, for runs where
the bytes legitimately differ (an emulated CPU); ``--strict`` requires dvc.lock's bytes
everywhere; ``--lock FILE`` compares with another dvc.lock than the workspace's.

dvc.lock and dvc.yaml are input: a hash that is not 32 lowercase hex digits (or DVC's
``<32 hex digits>.dir``) or a path that leaves the project is refused before it becomes
part of a path. Exit codes: 0 the reproduction holds, 1 it does not,
2 the input cannot be checked (one line says why), 130 stopped by Ctrl-C.

The package: ``lock`` reads dvc.lock and dvc.yaml (through ``pipeline.dvc_api``),
``files`` reads and hashes a file safely, ``cache`` checks the DVC cache, ``workspace``
the outputs and DVC's status, ``numbers`` the published numbers, ``report`` writes the
lines and ``command`` the command line and its verdict. Importing it runs nothing.
"""

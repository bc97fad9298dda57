"""Sweeps of DVC experiments as Dask tasks: ``python -m sweep -S KEY=V1,V2 ...``.

The client, where the user's repository is:
``grid`` expands the ``-S`` flags into points as DVC does and checks each against the
params; ``project`` is the user's repository (its commit, its commands, the names);
``environment`` what the points' commands get; ``cluster`` starts or reaches the Dask
cluster (TLS included); ``driver`` maps one task per point over it and shows the
results (``table``, as ``show`` does for any experiments).

The workers: ``worker`` is the Dask task, which runs each point as a process of its own
(``point``) in a clone of the repository; ``processes`` runs commands that can be
stopped whole.

Shared: ``jobs`` holds what travels between them; ``secrets`` keeps ``--env`` values and
URL credentials out of every message (DVC internals are in ``pipeline.dvc_api``); ``cli`` is
the boundary of the commands (``python -m sweep``, ``sweep.show``, ``sweep.point``).
"""

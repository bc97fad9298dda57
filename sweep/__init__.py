"""Sweeps of DVC experiments as Dask tasks: ``python -m sweep -S KEY=V1,V2 ...``.

``grid`` expands the ``-S`` flags into points as DVC does; ``driver`` is the client,
that maps one task per point over a Dask cluster and shows the results; ``worker`` is
the task, which runs each point as a process of its own (``point``) in a clone of the
repository; ``jobs`` holds what travels between them; ``processes`` runs commands that
can be stopped whole. ``cluster`` starts or reaches the Dask cluster (TLS included),
``secrets`` keeps ``--env`` values and URL credentials out of every message, and ``cli``
is the boundary of the commands (``python -m sweep``, ``sweep.show``, ``sweep.point``).
"""

"""Sweeps of DVC experiments as Dask tasks: ``python -m sweep -S KEY=V1,V2 ...``.

A module a job:

- ``__main__``: the command line of ``python -m sweep``; it reads the environment, once,
  and checks every option before anything runs. ``show``: ``python -m sweep.show``.
- ``client``: where the user's repository is; the grid of ``-S`` flags checked against
  the params, the project, the points' environment, one Dask task per point, and the
  table of the results.
- ``cluster``: a ``LocalCluster`` started here, or a scheduler's (TLS included), checked.
- ``worker``: the Dask task, which runs each point as a process of its own
  (``python -m sweep.worker``) in a clone of the repository, its commands in process
  groups that can be stopped whole.
- ``shared``: what they all use: the job and result that travel between client and
  worker, the logging filter that keeps ``--env`` values and URL credentials out of every
  line, and the boundary of the commands (with the project's exit codes,
  ``pipeline/errors.py``, and its ``Secret``, ``pipeline/secrets.py``).

DVC's internals are in ``pipeline.dvc_api``.
"""

"""Run one stage of the pipeline: ``python -m stages <stage>``, as dvc.yaml's commands do.

Before the stage's module is imported, and numpy with it, this

1. refuses an interpreter that is not the project's environment (``pipeline/interpreter.py``);
2. pins numpy's and OpenBLAS's floating-point code paths (``pipeline/cpu.py``), which both
   read once, when they load: so the outputs are the same bytes on every x86-64 CPU with
   AVX2;
3. under DVC, ties the stage to dvc (``runner.die_with_dvc``): a stage whose ``dvc repro``
   is killed stops too, instead of overwriting a newer run's outputs. Run by hand, the
   stage is tied to nothing, and outlives the shell that started it (``nohup`` works).

Then the stage runs under ``runner.run_stage``: its outputs are checked first (no folder
where a file goes, folders writable) and temporary files that killed runs left beside
them are removed (``artifacts.prepare_outputs``), then its ``main`` runs. Exit codes: 0;
1 for a problem the message names; 2 for a wrong command line; 128+N when stopped by
signal N.
"""

import argparse
import importlib
import os
import sys

from pipeline import cpu, paths, runner
from pipeline.errors import EXIT_USAGE
from pipeline.interpreter import check_interpreter


def parser() -> argparse.ArgumentParser:
    stages = argparse.ArgumentParser(
        prog="python -m stages", description="Run one stage of the pipeline (dvc.yaml's commands)."
    )
    stages.add_argument("stage", choices=paths.STAGES)
    return stages


def run(stage: str, *, pinned: bool) -> None:
    """Check and tidy ``stage``'s outputs, then run its ``main``. Where the code paths
    were pinned, what numpy and OpenBLAS really loaded is checked first (a line on stderr
    says when it is not what the pin asked for)."""
    # Imported only now, after the pin: they load numpy.
    from pipeline import artifacts

    module = importlib.import_module(f"stages.{stage}")
    if pinned:
        cpu.confirm_pinned_paths()
    artifacts.prepare_outputs(paths.PROJECT.outputs(stage), folders=paths.PROJECT.folders(stage))
    module.main()


def main(argv: list[str] | None = None) -> None:
    parent = os.getppid()  # first: dvc, which exec'd this, before it can end
    stage = parser().parse_args(argv).stage
    problem = check_interpreter(paths.ROOT / "requirements.txt")
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(EXIT_USAGE)
    pinned = cpu.pin_float_paths()
    runner.die_with_dvc(parent, os.environ)
    runner.run_stage(lambda: run(stage, pinned=pinned), stage=stage)


if __name__ == "__main__":
    main()

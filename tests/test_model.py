"""stages/model.py: the one home of the estimator."""

import re

from stages import model, paths
from stages.config import read_yaml
from stages.model import TrainParams

# What only the estimator's module may know: its class, its fitted attributes, its args.
ESTIMATOR_WORDS = re.compile(
    r"MLPClassifier|neural_network|\bcoefs_|\bloss_curve_|\bn_iter_\b|\bloss_\b|hidden_layer"
)


def example_train() -> dict:
    return read_yaml(paths.PROJECT.params)["train"]


def with_train(**changes) -> TrainParams:
    return TrainParams.model_validate(example_train() | changes)


def test_only_the_model_module_knows_the_estimator():
    # verify.py is the exception: its EXAMPLE_ARGS are the published example's reference.
    knowing = {
        path.name: [
            line.strip() for line in path.read_text().splitlines() if ESTIMATOR_WORDS.search(line)
        ]
        for path in sorted((paths.ROOT / "stages").glob("*.py"))
        if path.name not in {"model.py", "verify.py"}
    }
    assert {name: lines for name, lines in knowing.items() if lines} == {}


def test_build_makes_the_named_estimator_with_every_param():
    params = with_train()
    estimator = model.build(params)
    assert type(estimator).__name__ == model.NAME
    assert estimator.get_params() == params.estimator_kwargs() | {
        "verbose": False,
        "warm_start": False,
    }

"""The two published versions of scikit-learn's example, each in one record: the settings
that it uses and the numbers that it printed.

- ``EXAMPLE_2017``: the example as published in 2017, this pipeline's default
  (params.yaml): MNIST's own split, ``MLPClassifier(hidden_layer_sizes=(50,),
  max_iter=10, ...)``; 10 losses, 0.986800 / 0.970000.
- ``GALLERY_2021``: the stable gallery's since 2021 (scikit-learn PR #21647):
  ``train_test_split(X, y, random_state=0, test_size=0.7)``, 21,000 shuffled training rows
  and 49,000 test rows, ``MLPClassifier(hidden_layer_sizes=(40,), max_iter=8,
  learning_rate_init=0.2, ...)``; 8 losses, 0.986429 / 0.953061.

``matching`` says which version params.yaml describes (tools/verify checks that one's
numbers), ``differences`` how params.yaml differs from one, and ``overrides`` the ``-S``
arguments of ``dvc exp run`` that turn the default into another version (``make gallery``:
``python -m pipeline.published overrides gallery`` prints them).
"""

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.config import Params

# Imported by benchmarks/example.py, the example as one script: this module imports
# nothing of the pipeline's until a function needs it, so the script's time stays its own.

# Both versions scale the same 70,000 digits to [0, 1] in float64: MNIST's (datasets.MNIST).
PIXEL_DTYPE = "float64"
N_DIGITS = 70000


@dataclass(frozen=True)
class Version:
    """One published version of the example."""

    key: str  # its name on the command line and in `dvc exp show`
    title: str  # what verify calls it
    url: str
    # MLPClassifier's arguments that it sets; the others are scikit-learn's defaults.
    estimator_args: dict[str, Any] = field(repr=False)
    # Its split, as params.yaml's split section spells train_test_split's arguments.
    split: dict[str, Any] = field(repr=False)
    losses: tuple[float, ...] = field(repr=False)
    train_accuracy: float = 0.0
    test_accuracy: float = 0.0

    @property
    def accuracies(self) -> dict[str, float]:
        return {"train_accuracy": self.train_accuracy, "test_accuracy": self.test_accuracy}


EXAMPLE_2017 = Version(
    key="example",
    title="scikit-learn's example as published in 2017",
    url="https://scikit-learn.org/0.19/auto_examples/neural_networks/plot_mnist_filters.html",
    estimator_args={
        "hidden_layer_sizes": (50,),
        "max_iter": 10,
        "alpha": 1e-4,
        "solver": "sgd",
        "tol": 1e-4,
        "random_state": 1,
        "learning_rate_init": 0.1,
    },
    # X[:60000], X[60000:]: train_test_split without shuffling gives the same rows.
    split={"train_size": 60000, "test_size": None, "shuffle": False, "stratify": False},
    losses=(
        0.32009978,
        0.15347534,
        0.11544755,
        0.09279764,
        0.07889367,
        0.07170497,
        0.06282111,
        0.05530788,
        0.04960484,
        0.04645355,
    ),  # fmt: skip
    train_accuracy=0.986800,
    test_accuracy=0.970000,
)

GALLERY_2021 = Version(
    key="gallery",
    title="the stable gallery's, since 2021",
    url="https://scikit-learn.org/stable/auto_examples/neural_networks/plot_mnist_filters.html",
    estimator_args={
        "hidden_layer_sizes": (40,),
        "max_iter": 8,
        "alpha": 1e-4,
        "solver": "sgd",
        "random_state": 1,
        "learning_rate_init": 0.2,
    },
    split={
        "train_size": None,
        "test_size": 0.7,
        "shuffle": True,
        "random_state": 0,
        "stratify": False,
    },
    # The page prints the first and the last; the six between are those the same code
    # printed here, which gave the page's first and last losses and both its scores.
    losses=(
        0.44139186,
        0.19174891,
        0.13983521,
        0.11378556,
        0.09443967,
        0.07846529,
        0.06506307,
        0.05534985,
    ),  # fmt: skip
    train_accuracy=0.986429,
    test_accuracy=0.953061,
)

VERSIONS = (EXAMPLE_2017, GALLERY_2021)

# The losses were published to 8 decimals: half a unit of the 8th, with room for the
# last bits of another CPU. An accuracy may move by a few digits whose prediction was
# a tie to the last bit: 0.001 is 10 of the 10,000 test digits, 60 of the training ones.
LOSS_TOLERANCE = 1e-8
ACCURACY_TOLERANCE = 1e-3


def arguments(version: Version) -> dict[str, Any]:
    """The version's params as params.yaml spells them, ``section.key``, the estimator's
    defaults included: what ``overrides`` sets."""
    from sklearn.neural_network import MLPClassifier

    from pipeline.model import TrainParams

    # verbose and warm_start are not params (pipeline/model.py): they decide no number.
    estimator = MLPClassifier(**version.estimator_args).get_params()
    estimator = {key: estimator[key] for key in TrainParams.model_fields}
    found = {"data.pixel_dtype": PIXEL_DTYPE}
    found |= {f"split.{key}": value for key, value in version.split.items()}
    return found | {f"train.{key}": value for key, value in estimator.items()}


def params_arguments(params: "Params") -> dict[str, Any]:
    """``arguments``' keys for params.yaml's values."""
    found = {"data.pixel_dtype": params.data.pixel_dtype}
    found |= {f"split.{key}": value for key, value in params.split.model_dump().items()}
    return found | {f"train.{key}": value for key, value in params.train.estimator_kwargs().items()}


def _deciding(found: dict[str, Any]) -> dict[str, Any]:
    """The ``arguments`` that decide the numbers: the split's sizes as the rows that they
    give of the 70,000 (``train_size: 0.3`` is ``test_size: 0.7``: 21,000 / 49,000 rows),
    and its seed only where it shuffles."""
    from sklearn.model_selection import train_test_split

    train_size, test_size = found.pop("split.train_size"), found.pop("split.test_size")
    try:
        train, test = train_test_split(
            range(N_DIGITS), train_size=train_size, test_size=test_size, shuffle=False
        )
        sizes = f"{len(train)} / {len(test)} rows"
    except ValueError:
        sizes = f"{train_size} / {test_size}"
    seed = found.pop("split.random_state", None)
    deciding = {"split.train_size / test_size": sizes, "split.shuffle": found.pop("split.shuffle")}
    deciding["split.random_state"] = seed if deciding["split.shuffle"] else "unused unshuffled"
    return deciding | found


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _same(a: Any, b: Any) -> bool:
    """Equal as params: ``1e-4`` is ``0.0001``, but ``true`` is not ``1``."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def differences(params: "Params", version: Version) -> list[str]:
    """How ``params`` differ from ``version``'s settings, one ``key: value (version:
    value)`` each; empty if they are its settings."""
    wanted = _deciding(arguments(version))
    found = _deciding(params_arguments(params))
    return [
        f"{key}: {_shown(value)} ({version.key}: "
        + (_shown(wanted[key]) if key in wanted else "no such argument")
        + ")"
        for key, value in found.items()
        if key not in wanted or not _same(value, wanted[key])
    ]


def matching(params: "Params") -> Version | None:
    """The published version whose settings ``params`` are, if any."""
    return next((version for version in VERSIONS if not differences(params, version)), None)


def nearest(params: "Params") -> tuple[Version, list[str]]:
    """The version from which ``params`` differ least, and how."""
    found = [(version, differences(params, version)) for version in VERSIONS]
    return min(found, key=lambda pair: len(pair[1]))


def _yaml(value: Any) -> str:
    """``value`` as ``dvc exp run -S`` parses it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_yaml, value)) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def overrides(version: Version, base: Version = EXAMPLE_2017) -> list[str]:
    """``key=value`` for each argument in which ``version`` differs from ``base`` (the
    default params.yaml): with ``-S`` before each, ``dvc exp run`` makes it ``version``."""
    wanted, start = arguments(version), arguments(base)
    return [
        f"{key}={_yaml(value)}"
        for key, value in wanted.items()
        if key not in start or not _same(start[key], value)
    ]


def main(argv: list[str]) -> int:
    """``python -m pipeline.published overrides KEY``: the version's ``-S`` arguments."""
    from pipeline.errors import EXIT_OK, EXIT_USAGE

    versions = {version.key: version for version in VERSIONS}
    if len(argv) != 2 or argv[0] != "overrides" or argv[1] not in versions:
        print(
            f"usage: python -m pipeline.published overrides {{{','.join(versions)}}}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(" ".join(f"-S {override}" for override in overrides(versions[argv[1]])))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

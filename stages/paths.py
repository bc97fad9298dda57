"""Every file the pipeline reads or writes, named once, under a root folder.

``PROJECT`` is the repository itself, which the stages' ``main`` functions use; tests
lay the same files out under a folder of their own with ``Layout.under(tmp_path)``.
dvc.yaml spells the same paths; ``tests/test_dvc_yaml.py`` checks that the two agree.
"""

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Layout:
    """The pipeline's files under one root."""

    root: Path
    params: Path
    checksums: Path  # committed: the data set's identity
    images: Path
    labels: Path
    model: Path
    weights: Path
    loss_csv: Path
    metrics: Path
    per_class: Path
    predictions: Path
    weights_png: Path
    loss_png: Path
    misclassified_png: Path

    @classmethod
    def under(cls, root: Path) -> "Layout":
        data, outputs = root / "data", root / "outputs"
        return cls(
            root=root,
            params=root / "params.yaml",
            checksums=data / "mnist.sha256",
            images=data / "images.npy",
            labels=data / "labels.npy",
            model=outputs / "model.joblib",
            weights=outputs / "weights.npz",
            loss_csv=outputs / "loss.csv",
            metrics=outputs / "metrics.json",
            per_class=outputs / "per_class.csv",
            predictions=outputs / "predictions.csv",
            weights_png=outputs / "weights.png",
            loss_png=outputs / "loss.png",
            misclassified_png=outputs / "misclassified.png",
        )


PROJECT = Layout.under(ROOT)

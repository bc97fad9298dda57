"""Every file the pipeline reads or writes, named once, under a root folder.

``PROJECT`` is the repository itself, which the stages' ``main`` functions use; tests
lay the same files out under a folder of their own with ``Layout.under(tmp_path)``.
``OUTPUTS`` also says which stage writes which file, so that the runner can check a
stage's outputs before it starts; ``FOLDERS`` names the outputs that are folders.
dvc.yaml declares the same stages and outputs; ``tests/test_dvc_yaml.py`` keeps the two
equal.
"""

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The files the stages read that no stage writes, relative to the root.
INPUTS = {
    "params": "params.yaml",
    "checksums": "data/mnist.sha256",  # committed: the data set's identity
}
# What each stage writes, relative to the root; the stages in the pipeline's order.
OUTPUTS = {
    "fetch_and_scale": {
        "images": "data/images.npy",
        "labels": "data/labels.npy",
    },
    "train": {
        "model": "outputs/model.joblib",
        "weights": "outputs/weights.npz",
        "loss_csv": "outputs/loss.csv",
        "metrics": "outputs/metrics.json",
        "per_class": "outputs/per_class.csv",
        "predictions": "outputs/predictions.csv",
        "weights_by_epoch": "outputs/weights_by_epoch.npz",
        "epochs": "outputs/epochs",
        "units_csv": "outputs/units.csv",
        "units_metrics": "outputs/units.json",
    },
    "visualize": {
        "weights_png": "outputs/weights.png",
        "loss_png": "outputs/loss.png",
        "misclassified_png": "outputs/misclassified.png",
        "filters": "outputs/filters",
        "filmstrip_png": "outputs/filmstrip.png",
        "units_png": "outputs/units.png",
    },
}
# The outputs that are folders: DVCLive's per-epoch metrics, which train writes in place
# as the fit goes (progress that a reader can watch), and a grid image per kept epoch.
FOLDERS = frozenset({"epochs", "filters"})
STAGES = tuple(OUTPUTS)


@dataclass(frozen=True)
class Layout:
    """The pipeline's files under one root, by the names of ``INPUTS`` and ``OUTPUTS``."""

    root: Path
    params: Path
    checksums: Path
    images: Path
    labels: Path
    model: Path
    weights: Path
    loss_csv: Path
    metrics: Path
    per_class: Path
    predictions: Path
    weights_by_epoch: Path
    epochs: Path
    units_csv: Path
    units_metrics: Path
    weights_png: Path
    loss_png: Path
    misclassified_png: Path
    filters: Path
    filmstrip_png: Path
    units_png: Path

    @classmethod
    def under(cls, root: Path) -> "Layout":
        files = INPUTS | {name: path for stage in OUTPUTS.values() for name, path in stage.items()}
        return cls(root=root, **{name: root / path for name, path in files.items()})

    def outputs(self, stage: str) -> list[Path]:
        """The files and folders that ``stage`` writes."""
        return [getattr(self, name) for name in OUTPUTS[stage]]

    def folders(self, stage: str) -> list[Path]:
        """The outputs of ``stage`` that are folders."""
        return [getattr(self, name) for name in OUTPUTS[stage] if name in FOLDERS]


PROJECT = Layout.under(ROOT)

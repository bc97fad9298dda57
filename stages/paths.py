"""Every file the pipeline reads or writes, anchored on the repository root.

dvc.yaml spells the same paths; ``tests/test_dvc_yaml.py`` checks that the two agree.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PARAMS = ROOT / "params.yaml"

DATA = ROOT / "data"
CHECKSUMS = DATA / "mnist.sha256"  # committed: the data set's identity
IMAGES = DATA / "images.npy"
LABELS = DATA / "labels.npy"

OUTPUTS = ROOT / "outputs"
MODEL = OUTPUTS / "model.joblib"
WEIGHTS = OUTPUTS / "weights.npz"
LOSS_CSV = OUTPUTS / "loss.csv"
METRICS = OUTPUTS / "metrics.json"
PREDICTIONS = OUTPUTS / "predictions.csv"
WEIGHTS_PNG = OUTPUTS / "weights.png"
LOSS_PNG = OUTPUTS / "loss.png"
MISCLASSIFIED_PNG = OUTPUTS / "misclassified.png"

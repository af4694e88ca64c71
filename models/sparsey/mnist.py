"""Sparsey's MNIST protocol (sparsey.com/MNIST_Results.html, as far as it is known; the facts
are in docs/models/sparsey.md): edge-like 24 x 16 binary images, single-trial learning of a
few hundred images per class, read-outs on the top level's codes.

- :func:`preprocess`: 28 x 28 grey -> 24 x 16 (rows x columns, anti-aliased resize) ->
  binarised at ``threshold`` of full scale -> skeletonised (scikit-image), 384 pixels.
- :func:`per_class`: the first ``n`` images of each class, in class order.
- :func:`mnist_hierarchy`: the architecture used by ``experiments/sparsey.py``.
- :class:`HebbianReadout`: cell -> class counts learnt by co-activity (a Hebbian rule), read as
  log-normalised counts; :func:`svm_accuracy`: a linear SVM (scikit-learn) for comparison.
"""

from __future__ import annotations

import numpy as np

from .params import Level, MacParams, all_cells, grid_rf

IMAGE_SHAPE = (24, 16)


def preprocess(images: np.ndarray, threshold: float = 0.35) -> np.ndarray:
    """Edge-like binary frames from MNIST images.

    Parameters
    ----------
    images : np.ndarray, uint8, shape (n, 28, 28)
    threshold : float
        Binarisation level as a fraction of full scale (255).

    Returns
    -------
    np.ndarray, uint8, shape (n, 384): 0/1 pixels of the skeleton, row-major 24 x 16.
    """
    from skimage.morphology import skeletonize
    from skimage.transform import resize

    out = np.empty((len(images), IMAGE_SHAPE[0] * IMAGE_SHAPE[1]), dtype=np.uint8)
    for i, im in enumerate(images):
        small = resize(im / 255.0, IMAGE_SHAPE, anti_aliasing=True)
        out[i] = skeletonize(small > threshold).ravel()
    return out


def per_class(labels: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Indices of images ``start .. start + n - 1`` of each class (class 0 first)."""
    idx = [np.flatnonzero(labels == c)[start : start + n] for c in range(10)]
    if min(map(len, idx)) < n:
        raise ValueError(f"fewer than {start + n} images in some class")
    return np.concatenate(idx)


#: The architecture of experiments/sparsey.py, chosen on a validation split by
#: experiments/sparsey_architecture.py (docs/models/sparsey.md).
LEVEL1 = {
    "grid": (20, 13), "rf": (5, 5), "Q": 16, "K": 16, "pi_min": 2, "freeze_at": 0.1,
    "inflection": 0.9, "chi": 10.0,
}  # fmt: skip
LEVEL2 = {"Q": 40, "K": 10, "pi_min": 1, "freeze_at": 0.5}


def mnist_hierarchy(levels: int = 1) -> tuple[Level, ...]:
    """Level 1: a grid of macs with overlapping RFs on the image; level 2 (``levels = 2``):
    one mac that reads every cell of level 1."""
    c = LEVEL1
    p1 = MacParams(**{k: v for k, v in c.items() if k not in ("grid", "rf")})
    l1 = Level(p1, grid_rf(IMAGE_SHAPE, c["grid"], c["rf"]), shape=c["grid"])
    if levels == 1:
        return (l1,)
    p2 = MacParams(**LEVEL2)
    return (l1, Level(p2, all_cells(l1.cells)))


class HebbianReadout:
    """Class nodes that count their co-activity with each code cell during training (a
    Hebbian rule); a code votes ``sum over its active cells of log P(class | cell)``, with
    the counts smoothed by ``prior`` (so a cell never seen in training is neutral)."""

    def __init__(self, n_classes: int = 10, prior: float = 0.1) -> None:
        self.n_classes, self.prior = n_classes, prior

    def fit(self, cells: np.ndarray, labels: np.ndarray) -> HebbianReadout:
        cells = np.asarray(cells, dtype=np.float64)
        onehot = np.eye(self.n_classes)[labels]
        self.counts = cells.T @ onehot  # (cells, classes)
        total = self.counts.sum(axis=1, keepdims=True)
        self.log_p = np.log((self.counts + self.prior) / (total + self.prior * self.n_classes))
        return self

    def predict(self, cells: np.ndarray) -> np.ndarray:
        return (np.asarray(cells, dtype=np.float64) @ self.log_p).argmax(axis=1)


#: The linear SVM's C, chosen on the validation split (experiments/sparsey_architecture.py).
SVM_C = 0.001
#: The candidates of C that a validation split chooses from.
SVM_CS = (0.001, 0.003, 0.01, 0.03, 0.1, 1.0)


def svm_accuracy(train_x, train_y, test_x, test_y, C: float = SVM_C) -> float:
    """Accuracy of a linear SVM (scikit-learn ``LinearSVC``) trained on the training codes."""
    from sklearn.svm import LinearSVC

    model = LinearSVC(C=C, max_iter=5000).fit(train_x, train_y)
    return float((model.predict(test_x) == test_y).mean())


def svm_c_scores(train_x, train_y, val_x, val_y, Cs=SVM_CS) -> dict[float, float]:
    """Validation accuracy of the linear SVM for each candidate C (in the order given: the
    first of equal scores wins a ``max``)."""
    return {C: svm_accuracy(train_x, train_y, val_x, val_y, C=C) for C in Cs}

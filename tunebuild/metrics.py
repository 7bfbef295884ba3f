"""Classification metrics by scikit-learn's conventions, and likely label errors by cleanlab's rule.

- Macro-F1: the unweighted mean of every taxonomy label's F1, as scikit-learn's
  `f1_score(y_true, y_pred, labels=range(k), average="macro", zero_division=0)`: a label with no
  test rows and no predictions counts as 0, so a model is scored over the whole taxonomy, not over
  the labels the test split happens to hold. (truth [0,0,1,1,2,2], prediction [0,0,1,3,2,2], 4
  labels: 0.667.)
- Per class: precision, recall and F1 with 0 where undefined (zero_division=0), and the support.
- Label issues: exactly cleanlab's `find_label_issues(labels, pred_probs,
  filter_by="confident_learning")` (cleanlab 2.x: count.compute_confident_joint, then
  filter._reduce_issues), checked against cleanlab in the tests.
"""

from __future__ import annotations

import numpy as np

MACRO_F1 = (
    'Macro-F1 is scikit-learn\'s convention (f1_score, average="macro", zero_division=0) over '
    "all {k} labels of the taxonomy: the mean of every label's F1, where a label with no test rows "
    "and no predictions counts as 0."
)
MACRO_F1_NAME = "macro-F1 (scikit-learn, over all {k} taxonomy labels)"
DEFINITION = (
    "scikit-learn f1_score(average='macro', labels=all {k} taxonomy labels, zero_division=0)"
)
NO_SUPPORT = "no test rows: recall and F1 are 0 by convention (zero_division=0)"

# cleanlab's constants (cleanlab.internal.constants)
FLOATING_POINT_COMPARISON = 1e-6
CONFIDENT_THRESHOLDS_LOWER_BOUND = 2 * FLOATING_POINT_COMPARISON
ABSENT_CLASS_THRESHOLD = 2.0  # no row carries the label: nothing is confidently of it


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def scores(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> tuple[dict, dict]:
    """(accuracy, macro-F1 over all labels) and per-class precision/recall/F1/support."""
    k = len(labels)
    cm = confusion(y_true, y_pred, k)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(k), where=(support + predicted) > 0)
    summary = {
        "accuracy": round(float(tp.sum() / max(cm.sum(), 1)), 6),
        "macro_f1": round(float(f1.mean()) if k else 0.0, 6),
    }
    per_class = {
        lab: {
            "precision": round(float(precision[i]), 6),
            "recall": round(float(recall[i]), 6),
            "f1": round(float(f1[i]), 6),
            "support": int(support[i]),
        }
        for i, lab in enumerate(labels)
    }
    return summary, per_class


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 over all k labels (as `scores`), for every row of a (..., n) batch of resamples."""
    flat_true, flat_pred = (
        y_true.reshape(-1, y_true.shape[-1]),
        y_pred.reshape(-1, y_pred.shape[-1]),
    )
    b = len(flat_true)
    offset = (np.arange(b) * k * k)[:, None]
    cm = np.bincount((offset + flat_true * k + flat_pred).ravel(), minlength=b * k * k).reshape(
        b, k, k
    )
    tp, support, predicted = np.diagonal(cm, axis1=1, axis2=2), cm.sum(2), cm.sum(1)
    f1 = np.divide(
        2 * tp, support + predicted, out=np.zeros((b, k)), where=(support + predicted) > 0
    )
    return f1.mean(1).reshape(y_true.shape[:-1])


def per_class_rows(per_class: dict) -> list[list]:
    """The card's per-class table rows: label, precision, recall, F1, support, and a note when a
    label has no test rows."""
    return [
        [
            lab,
            v["precision"],
            v["recall"],
            v["f1"],
            v["support"],
            "" if v["support"] else NO_SUPPORT,
        ]
        for lab, v in per_class.items()
    ]


# ---- likely label errors -------------------------------------------------------------------------


def confident_thresholds(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per class: the mean probability of that class over the rows labelled with it (cleanlab's
    get_confident_thresholds)."""
    k = probs.shape[1]
    means = [
        np.mean(probs[:, j][given == j]) if (given == j).any() else ABSENT_CLASS_THRESHOLD
        for j in range(k)
    ]
    return np.clip(means, a_min=CONFIDENT_THRESHOLDS_LOWER_BOUND, a_max=None)


def label_issues(probs: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confident learning on out-of-fold probabilities: (flagged mask, suggested label, its
    probability).

    A row is confidently of every class whose probability reaches that class's threshold (less
    1e-6); its likely true label is that class, or the likeliest class overall when several are
    confident. It is flagged when that label differs from the given one and the given label is not
    the top prediction (within 1e-6): cleanlab's confident-learning filter, number for number."""
    rows = np.arange(len(given))
    confident = probs >= confident_thresholds(probs, given) - FLOATING_POINT_COMPARISON
    count = confident.sum(1)
    suggested = np.where(count > 1, probs.argmax(1), confident.argmax(1))
    off_diagonal = (count > 0) & (suggested != given)
    bumped = probs.copy()
    bumped[rows, given] += FLOATING_POINT_COMPARISON
    flagged = off_diagonal & (bumped.argmax(1) != given)
    return flagged, suggested, probs[rows, suggested]

"""Instance (object) metrics of nucleus segmentation: PQ (SQ, RQ), AJI, detection F1, object Dice, count ratio.

Inputs are instance label maps of one image, prediction and annotation of the same shape: 0 = background,
every other value one object (ids need not be contiguous; an object may have several parts). A leading
channel of size 1 (``(1, H, W)``, the output of :class:`~seunet_monai.transforms.instances.NucleusInstances`)
is dropped; any spatial rank works. Integer, boolean or integral float values (labels loaded as float).

Definitions (``G_i`` annotated objects, ``S_j`` predicted objects, ``|.|`` pixel counts):

- **Matching**: a pair ``(G_i, S_j)`` matches when ``IoU > match_iou`` (0.5 by default; above 0.5 each object
  matches at most one other). TP = matched pairs, FP = unmatched predictions, FN = unmatched annotations.
- **PQ** = ``Σ IoU(matched) / (TP + FP/2 + FN/2)`` = SQ x RQ (Kirillov et al. 2019); **SQ** =
  ``Σ IoU(matched) / TP``; **RQ** = ``TP / (TP + FP/2 + FN/2)``. Counted by MONAI's
  ``compute_panoptic_quality(..., output_confusion_matrix=True)``; SQ is 0 when there are objects but no match
  (MONAI's and panopticapi's convention).
- **F1** (detection at IoU ``match_iou``) = ``2 TP / (2 TP + FP + FN)``; with the same matching this is the same
  number as RQ, reported under its own key because the two names are read by different communities.
- **AJI** (aggregated Jaccard index, Kumar et al. 2017, as in HoVer-Net's ``get_fast_aji``): every ``G_i``
  takes the ``S_j`` of highest IoU among those it overlaps (ties: the lowest id), adding ``|G_i ∩ S_j|`` to
  ``C`` and ``|G_i ∪ S_j|`` to ``U``; a ``G_i`` overlapping nothing adds ``|G_i|`` to ``U``; every ``S_j``
  taken by no ``G_i`` adds ``|S_j|`` to ``U``. AJI = ``C / U``. (An ``S_j`` taken by several ``G_i`` is counted
  in each of their unions, as in the original definition.) MONAI has no AJI, so it is written here, vectorised
  over the sparse contingency table of overlapping pairs (``np.unique`` of pair codes, ``np.bincount`` areas).
- **Dice** (object-level Dice, Sirinukunwattana et al. 2017, GlaS): ``½ [Σ_i |G_i| D(G_i, S*(G_i)) / Σ_i |G_i|
  + Σ_j |S_j| D(G*(S_j), S_j) / Σ_j |S_j|]`` with ``D`` the Dice coefficient and ``S*(G_i)`` the prediction
  of largest overlap with ``G_i`` (``D = 0`` when none overlaps), and symmetrically. 0 when only one side has
  objects.
- **count_ratio** = ``#S / #G``.

Values are ``nan`` only where they are ``0/0``: every metric of an image with no objects on either side, and
``count_ratio`` without annotated objects.

Dataset-wide (:class:`InstanceMetrics`): the per-image sufficient statistics (:class:`InstanceCounts`: TP, FP,
FN, IoU sum, AJI's ``C`` and ``U``, Dice's weighted sums, object counts and areas) are **summed over images**
and the formulas above applied to the sums: PQ, SQ, RQ, F1 from the summed TP/FP/FN and IoU sums (as PQ is
defined over a dataset), AJI from the summed ``C`` and ``U`` (Kumar et al.'s aggregation: large images weigh
more than in a mean of per-image AJIs), object Dice with the weights ``|G_i| / Σ|G|`` over all annotated objects
of the set, and the count ratio of the summed counts. Images without objects add nothing.

Cost: MONAI's ``compute_panoptic_quality`` holds one full-size mask per object on each side (``n x H x W``
int32). Matched objects overlap, so the objects split into independent clusters of overlapping ones (the
connected components of the overlap graph); MONAI is called on each cluster's bounding-box crop, and its
TP and IoU sums added, which gives exactly its whole-image counts at a memory of one cluster.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_panoptic_quality
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.segmentation import relabel_sequential

__all__ = [
    "INSTANCE_METRIC_KEYS",
    "InstanceCounts",
    "InstanceMetrics",
    "instance_counts",
    "instance_metrics",
    "instance_scores",
]

INSTANCE_METRIC_KEYS = ("pq", "sq", "rq", "f1", "aji", "dice", "count_ratio")


@dataclass(frozen=True)
class InstanceCounts:
    """Sufficient statistics of the instance metrics of one image or, summed with ``+``, of a set of images.

    Attributes:
        n_pred, n_true: numbers of predicted and annotated objects.
        tp, fp, fn: matched pairs, unmatched predictions, unmatched annotations (IoU > ``match_iou``).
        iou_sum: sum of the IoUs of the matched pairs.
        aji_intersection, aji_union: AJI's ``C`` and ``U`` (module docstring).
        dice_true, area_true: ``Σ_i |G_i| D(G_i, S*(G_i))`` and ``Σ_i |G_i|``.
        dice_pred, area_pred: ``Σ_j |S_j| D(G*(S_j), S_j)`` and ``Σ_j |S_j|``.
    """

    n_pred: int = 0
    n_true: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou_sum: float = 0.0
    aji_intersection: int = 0
    aji_union: int = 0
    dice_true: float = 0.0
    area_true: int = 0
    dice_pred: float = 0.0
    area_pred: int = 0

    def __add__(self, other: InstanceCounts) -> InstanceCounts:
        if not isinstance(other, InstanceCounts):
            return NotImplemented
        return InstanceCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def _labels(x: Any, name: str) -> np.ndarray:
    """Instance labels as a non-negative int64 array, a leading channel of size 1 dropped."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.long() if x.dtype == torch.uint32 else x
    arr = np.asarray(x)
    if arr.ndim >= 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim < 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty label map, got shape {arr.shape}.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integer labels, found non-integral or non-finite values.")
    elif arr.dtype.kind not in "biu":
        raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise ValueError(f"{name} must hold labels >= 0 (0 = background), found {int(arr.min())}.")
    return relabel_sequential(arr)[0]


def _panoptic_counts(
    pred: np.ndarray,
    true: np.ndarray,
    pairs_true: np.ndarray,
    pairs_pred: np.ndarray,
    n_true: int,
    n_pred: int,
    match_iou: float,
) -> tuple[int, float]:
    """TP and IoU sum of MONAI's ``compute_panoptic_quality``, one cluster of overlapping objects at a time."""
    if pairs_true.size == 0:
        return 0, 0.0
    graph = coo_matrix(
        (np.ones(pairs_true.size), (pairs_true - 1, n_true + pairs_pred - 1)), shape=(n_true + n_pred, n_true + n_pred)
    )
    _, component = connected_components(graph, directed=False)
    boxes_true, boxes_pred = ndi.find_objects(true), ndi.find_objects(pred)
    tp, iou_sum = 0, 0.0
    for c in np.unique(component[pairs_true - 1]):
        ids_true = np.flatnonzero(component[:n_true] == c) + 1
        ids_pred = np.flatnonzero(component[n_true:] == c) + 1
        boxes = [boxes_true[i - 1] for i in ids_true] + [boxes_pred[j - 1] for j in ids_pred]
        crop = tuple(slice(min(b[k].start for b in boxes), max(b[k].stop for b in boxes)) for k in range(true.ndim))
        t, p = true[crop], pred[crop]
        t = np.where(np.isin(t, ids_true), t, 0)
        p = np.where(np.isin(p, ids_pred), p, 0)
        counts = compute_panoptic_quality(
            torch.from_numpy(p), torch.from_numpy(t), match_iou_threshold=match_iou, output_confusion_matrix=True
        )
        tp += int(counts[0])
        iou_sum += float(counts[3])
    return tp, iou_sum


def _weighted_best(
    owner: np.ndarray, other: np.ndarray, inter: np.ndarray, dice: np.ndarray, areas: np.ndarray
) -> float:
    """``Σ |owner| D(owner, partner)`` over the owners of overlapping pairs, the partner being the one of largest
    overlap (ties: lowest id); owners without a pair add 0."""
    if owner.size == 0:
        return 0.0
    order = np.lexsort((other, -inter, owner))
    best = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    return float(np.sum(areas[owner[best]] * dice[best]))


def instance_counts(pred_instances: Any, true_instances: Any, match_iou: float = 0.5) -> InstanceCounts:
    """The sufficient statistics of one image (module docstring).

    Args:
        pred_instances: predicted labels ``(*spatial)`` or ``(1, *spatial)``, 0 = background.
        true_instances: annotated labels of the same spatial shape.
        match_iou: IoU above which a pair matches, in ``[0.5, 1)``.

    Returns:
        :class:`InstanceCounts` of the image.

    Raises:
        ValueError: for labels that are not non-negative integers, shapes that differ, or ``match_iou`` outside
            ``[0.5, 1)``.
    """
    if not 0.5 <= float(match_iou) < 1.0:
        raise ValueError(f"match_iou must be in [0.5, 1) (a unique matching), got {match_iou}.")
    pred = _labels(pred_instances, "pred_instances")
    true = _labels(true_instances, "true_instances")
    if pred.shape != true.shape:
        raise ValueError(
            f"pred_instances and true_instances must have the same shape, got {pred.shape} and {true.shape}."
        )
    n_pred, n_true = int(pred.max()), int(true.max())
    area_pred = np.bincount(pred.ravel(), minlength=n_pred + 1)
    area_true = np.bincount(true.ravel(), minlength=n_true + 1)

    # sparse contingency table of overlapping pairs: (true id, pred id) -> |G ∩ S|
    both = (true > 0) & (pred > 0)
    codes, inter = np.unique(true[both] * (n_pred + 1) + pred[both], return_counts=True)
    pt, pp = codes // (n_pred + 1), codes % (n_pred + 1)
    union = area_true[pt] + area_pred[pp] - inter
    iou = inter / union
    dice = 2.0 * inter / (area_true[pt] + area_pred[pp])

    # AJI: each annotated object's best prediction (highest IoU, then lowest id)
    order = np.lexsort((pp, -iou, pt))
    first = order[np.r_[True, pt[order][1:] != pt[order][:-1]]] if order.size else order
    taken = np.zeros(n_pred + 1, dtype=bool)
    taken[pp[first]] = True
    paired_true = np.zeros(n_true + 1, dtype=bool)
    paired_true[pt[first]] = True
    aji_c = int(inter[first].sum())
    aji_u = int(union[first].sum() + area_true[1:][~paired_true[1:]].sum() + area_pred[1:][~taken[1:]].sum())

    tp, iou_sum = _panoptic_counts(pred, true, pt, pp, n_true, n_pred, float(match_iou))
    return InstanceCounts(
        n_pred=n_pred,
        n_true=n_true,
        tp=tp,
        fp=n_pred - tp,
        fn=n_true - tp,
        iou_sum=iou_sum,
        aji_intersection=aji_c,
        aji_union=aji_u,
        dice_true=_weighted_best(pt, pp, inter, dice, area_true),
        area_true=int(area_true[1:].sum()),
        dice_pred=_weighted_best(pp, pt, inter, dice, area_pred),
        area_pred=int(area_pred[1:].sum()),
    )


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def instance_scores(counts: InstanceCounts) -> dict[str, float]:
    """The metrics of :data:`INSTANCE_METRIC_KEYS` from sufficient statistics (one image or summed).

    Returns:
        ``{"pq", "sq", "rq", "f1", "aji", "dice", "count_ratio"}`` (floats, ``nan`` where ``0/0``) and the
        object counts ``"n_pred"``, ``"n_true"`` (ints).
    """
    c = counts
    objects = c.tp + c.fp + c.fn
    if c.area_true and c.area_pred:
        dice = 0.5 * (c.dice_true / c.area_true + c.dice_pred / c.area_pred)
    else:
        dice = 0.0 if (c.area_true or c.area_pred) else math.nan
    return {
        "pq": _ratio(c.iou_sum, c.tp + 0.5 * c.fp + 0.5 * c.fn),
        "sq": _ratio(c.iou_sum, c.tp) if c.tp else (0.0 if objects else math.nan),
        "rq": _ratio(c.tp, c.tp + 0.5 * c.fp + 0.5 * c.fn),
        "f1": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "aji": _ratio(c.aji_intersection, c.aji_union),
        "dice": dice,
        "count_ratio": _ratio(c.n_pred, c.n_true),
        "n_pred": int(c.n_pred),
        "n_true": int(c.n_true),
    }


def instance_metrics(pred_instances: Any, true_instances: Any, match_iou: float = 0.5) -> dict[str, float]:
    """The metrics of one image: :func:`instance_scores` of :func:`instance_counts` (same arguments)."""
    return instance_scores(instance_counts(pred_instances, true_instances, match_iou))


class InstanceMetrics:
    """Dataset-wide instance metrics: sums the per-image :class:`InstanceCounts` (module docstring).

    Not a MONAI ``Cumulative`` metric: its inputs are per-image label maps of any id range, and its result is
    one dict of several metrics computed from summed counts, not a reduction of per-image values.

    Args:
        match_iou: IoU above which a pair matches, in ``[0.5, 1)``.

    Attributes:
        counts: the summed :class:`InstanceCounts` since the last :meth:`reset`.
        per_image: the per-image scores (:func:`instance_scores`), in the order of the updates.
    """

    def __init__(self, match_iou: float = 0.5) -> None:
        if not 0.5 <= float(match_iou) < 1.0:
            raise ValueError(f"match_iou must be in [0.5, 1) (a unique matching), got {match_iou}.")
        self.match_iou = float(match_iou)
        self.reset()

    def reset(self) -> None:
        """Forget every image."""
        self.counts = InstanceCounts()
        self.per_image: list[dict[str, float]] = []

    def update(self, pred_instances: Any, true_instances: Any) -> dict[str, float]:
        """Add one image; returns its own scores.

        Args:
            pred_instances: predicted labels ``(*spatial)`` or ``(1, *spatial)``, 0 = background.
            true_instances: annotated labels of the same spatial shape.
        """
        counts = instance_counts(pred_instances, true_instances, self.match_iou)
        self.counts = self.counts + counts
        scores = instance_scores(counts)
        self.per_image.append(scores)
        return scores

    def aggregate(self) -> dict[str, float]:
        """The dataset-wide metrics (:func:`instance_scores` of the summed counts), plus ``"images"``."""
        return {**instance_scores(self.counts), "images": len(self.per_image)}

    def state(self) -> dict[str, Any]:
        """The summed counts as a plain dict (e.g. for ``metrics.json``)."""
        return asdict(self.counts)

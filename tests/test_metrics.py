"""mIoU and per-class boundary precision/recall/F (0.01 of the diagonal) on worked examples."""
import numpy as np
import pytest

from segsort.boundaries import BoundaryCounts
from segsort.metrics import boundary_scores, class_boundary_counts, confusion_matrix, segmentation_scores


def test_miou_of_a_worked_example():
    truth = np.array([[0, 0, 1, 1],
                      [0, 0, 1, 255]], dtype=np.uint8)
    prediction = np.array([[0, 1, 1, 1],
                           [0, 0, 2, 2]], dtype=np.uint8)
    confusion = confusion_matrix(prediction, truth, num_classes=4)
    assert confusion.sum() == 7                                # the void pixel is not counted
    scores = segmentation_scores(confusion)
    # class 0: 3 right, 1 missed -> 3/4; class 1: 2 right of truth 3, one extra predicted -> 2/4;
    # class 2: predicted once, never true -> 0; class 3: absent from both -> not scored.
    assert scores["per_class_iou"] == [0.75, 0.5, 0.0, None]
    assert scores["miou"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(5 / 7)


def square(shape, top, left, size, label=1):
    labels = np.zeros(shape, dtype=np.uint8)
    labels[top:top + size, left:left + size] = label
    return labels


def test_shifted_class_boundary_inside_and_outside_the_tolerance():
    shape = (200, 200)                                        # 0.01 of the diagonal: 2.83 px
    truth = square(shape, 50, 50, 100)
    inside = class_boundary_counts(square(shape, 52, 52, 100), truth, 2)
    assert inside[1].precision == inside[1].recall == 1.0     # shifted 2 px: every pixel matched
    outside = class_boundary_counts(square(shape, 54, 54, 100), truth, 2)
    assert outside[1].recall < 0.1 and outside[1].precision < 0.1  # shifted 4 px: only the crossings match


def test_class_boundaries_are_matched_one_to_one_and_per_class():
    shape = (200, 200)
    truth = square(shape, 50, 50, 100)
    prediction = truth.copy()
    prediction[100, 50:150] = 2                               # a thin false class-2 line across the object
    counts = class_boundary_counts(prediction, truth, 3)
    assert counts[1].recall == 1.0 and counts[1].precision < 1.0  # extra class-1 boundary along the line
    assert counts[2].human == 0 and counts[2].matched_machine == 0 and counts[2].machine > 0
    scores = boundary_scores(counts)
    assert scores["per_class_boundary"][2]["precision"] == 0.0
    assert scores["boundary_f"] == pytest.approx((counts[0].f_measure + counts[1].f_measure + 0.0) / 3)


def test_void_band_puts_the_true_border_in_its_middle_and_wide_void_is_not_scored():
    shape = (300, 300)                                        # 0.01 of the diagonal: 4.24 px
    truth = square(shape, 50, 50, 100)
    banded = truth.copy()
    banded[48:53, 48:152] = 255                               # a 5 px void band on the top edge, as VOC draws
    counts = class_boundary_counts(truth, banded, 2)[1]
    assert counts.recall == 1.0 and counts.precision > 0.99   # only where the band ends can a corner move
    wide = truth.copy()
    wide[:, 120:] = 255                                       # the right part is unknown: not scored at all
    prediction = truth.copy()
    prediction[60:90, 160:190] = 1                            # a false object inside the unknown area
    counts = class_boundary_counts(prediction, wide, 2)
    assert counts[1].precision == 1.0 and counts[1].recall == 1.0


def test_a_class_absent_from_both_is_not_scored():
    counts = [BoundaryCounts(5, 10, 5, 10), BoundaryCounts(), BoundaryCounts(4, 4, 4, 4)]
    scores = boundary_scores(counts)
    assert scores["per_class_boundary"][1] is None
    assert scores["boundary_f"] == 0.75  # (0.5 + 1.0) / 2: the absent class is left out of the mean

"""BSDS-style boundary matching, contour scores and achievable segmentation accuracy on worked examples."""
import numpy as np
import pytest

from segsort.boundaries import (BoundaryCounts, achievable_segmentation_accuracy, contour_scores,
                                match_boundaries, segmentation_boundaries)


def vertical_line(column, shape=(100, 100)):
    m = np.zeros(shape, bool)
    m[:, column] = True
    return m


def test_segmentation_boundaries_are_one_pixel_on_one_side():
    labels = np.zeros((4, 6), int)
    labels[:, 3:] = 1
    labels[2:, :3] = 2
    b = segmentation_boundaries(labels)
    expected = np.zeros((4, 6), bool)
    expected[:, 2] = True      # left of the vertical border
    expected[1, :3] = True     # above the horizontal border
    assert np.array_equal(b, expected)
    assert not segmentation_boundaries(np.zeros((5, 5), int)).any()


def test_matching_tolerance_is_relative_to_the_diagonal():
    human = vertical_line(50)
    # diagonal 141.4 px: 0.0075 of it is 1.06 px
    assert match_boundaries(vertical_line(51), [human]) == BoundaryCounts(100, 100, 100, 100)
    assert match_boundaries(vertical_line(52), [human]) == BoundaryCounts(0, 100, 0, 100)
    counts = match_boundaries(vertical_line(52), [human], max_distance=0.02)  # 2.8 px
    assert counts.precision == counts.recall == counts.f_measure == 1.0


def test_matching_is_one_to_one():
    machine = vertical_line(50) | vertical_line(51)           # a double line against a single human line
    counts = match_boundaries(machine, [vertical_line(50)])
    assert counts == BoundaryCounts(100, 200, 100, 100)
    assert counts.precision == 0.5 and counts.recall == 1.0 and counts.f_measure == pytest.approx(2 / 3)


def test_several_humans_sum_recall_and_share_precision():
    machine = vertical_line(20)
    humans = [vertical_line(20), vertical_line(80), vertical_line(20) | vertical_line(80)]
    counts = match_boundaries(machine, humans)
    # recall: 100 of 100, 0 of 100, 100 of 200 human pixels; precision: every machine pixel matches someone
    assert counts == BoundaryCounts(matched_machine=100, machine=100, matched_human=200, human=400)
    assert match_boundaries(np.zeros((100, 100), bool), humans) == BoundaryCounts(0, 0, 0, 400)


def test_ods_sums_counts_over_images_and_ois_takes_each_image_best():
    thresholds = np.array([0.3, 0.6])
    image_a = [BoundaryCounts(90, 100, 90, 100), BoundaryCounts(50, 50, 50, 100)]    # F 0.9, 0.667
    image_b = [BoundaryCounts(10, 100, 10, 100), BoundaryCounts(40, 50, 40, 100)]    # F 0.1, 0.533
    scores = contour_scores([image_a, image_b], thresholds)
    # summed: t=0.3 -> P 100/200, R 100/200, F 0.5; t=0.6 -> P 90/100, R 90/200, F 0.6
    assert scores.ods == pytest.approx(0.6) and scores.ods_threshold == 0.6
    assert scores.ods_precision == pytest.approx(0.9) and scores.ods_recall == pytest.approx(0.45)
    # OIS: a at 0.3 and b at 0.6 -> P 130/150, R 130/200
    p, r = 130 / 150, 130 / 200
    assert scores.ois == pytest.approx(2 * p * r / (p + r))


def test_achievable_segmentation_accuracy_labels_each_segment_by_its_majority():
    segments = np.array([[0, 0, 0, 1],
                         [0, 0, 1, 1],
                         [2, 2, 1, 1]])
    labels = np.array([[5, 5, 7, 7],
                       [5, 255, 7, 7],
                       [7, 5, 7, 255]])
    # segment 0: 5,5,7,5 (void skipped) -> 3 of 4; segment 1: 7,7,7,7 -> 4; segment 2: 7,5 -> 1 of 2
    assert achievable_segmentation_accuracy(segments, labels) == (8, 10)
    assert achievable_segmentation_accuracy(labels, labels) == (10, 10)
    assert achievable_segmentation_accuracy(segments, np.full((3, 4), 255)) == (0, 0)

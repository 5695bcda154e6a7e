import math

import pytest
import torch

from sweetspot.core.metrics import (
    accuracy,
    agreement,
    class_accuracy,
    expected_calibration_error,
    nontarget_entropy,
    normalized_entropy,
    off_target_mass,
    soft_labels,
)


def test_normalized_entropy_of_uniform_soft_labels_is_one():
    assert normalized_entropy(torch.zeros(5, 10), temperature=1.0) == pytest.approx(1.0)


def test_normalized_entropy_of_one_hot_soft_labels_is_zero():
    logits = torch.full((4, 10), -1e4)
    logits[:, 2] = 1e4
    assert normalized_entropy(logits, temperature=1.0) == pytest.approx(0.0, abs=1e-6)


def test_normalized_entropy_matches_a_hand_computation():
    # p = softmax([ln 2, 0] / 1) = [2/3, 1/3]; H = -(2/3 ln 2/3 + 1/3 ln 1/3); normalised by ln 2
    logits = torch.tensor([[math.log(2.0), 0.0]])
    expected = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(2)
    assert normalized_entropy(logits, 1.0) == pytest.approx(expected, rel=1e-6)


def test_temperature_raises_entropy():
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(0)) * 5
    values = [normalized_entropy(logits, t) for t in (1, 2, 4, 8, 16)]
    assert values == sorted(values) and values[-1] < 1.0


def test_off_target_mass_of_label_smoothing_labels_is_its_factor():
    # LS labels with a = 0.6 as logits: log of (0.46, 0.06, ...) gives the same soft labels at T = 1
    a, c = 0.6, 10
    probs = torch.full((3, c), a / c)
    labels = torch.tensor([0, 4, 9])
    probs[torch.arange(3), labels] += 1 - a
    assert off_target_mass(probs.log(), labels, 1.0) == pytest.approx(a, rel=1e-5)


def test_nontarget_entropy_is_one_for_label_smoothing_and_lower_for_a_peaked_similarity():
    labels = torch.tensor([0, 1])
    flat = torch.zeros(2, 10)
    flat[torch.arange(2), labels] = 5.0
    assert nontarget_entropy(flat, labels, 1.0) == pytest.approx(1.0)
    peaked = flat.clone()
    peaked[:, 7] = 4.0
    assert nontarget_entropy(peaked, labels, 1.0) < 0.7


def test_expected_calibration_error_is_zero_when_confidence_equals_accuracy():
    # every prediction at confidence 0.75 and three of four correct
    p = torch.tensor([[0.75, 0.25]] * 4)
    labels = torch.tensor([0, 0, 0, 1])
    assert expected_calibration_error(p.log(), labels) == pytest.approx(0.0, abs=1e-6)


def test_expected_calibration_error_of_confident_mistakes_is_their_confidence():
    p = torch.tensor([[0.9, 0.1]] * 4)
    labels = torch.ones(4, dtype=torch.long)
    assert expected_calibration_error(p.log(), labels) == pytest.approx(0.9, rel=1e-5)


def test_accuracy_class_accuracy_and_agreement():
    logits = torch.eye(4)  # predicts 0, 1, 2, 3
    labels = torch.tensor([0, 1, 3, 3])
    assert accuracy(logits, labels) == 0.75
    assert class_accuracy(logits, labels, (3,)) == 0.5
    assert class_accuracy(logits, labels, (0, 1)) == 1.0
    assert class_accuracy(logits, labels, (2,)) is None  # no example of class 2
    assert agreement(logits, torch.eye(4).flip(0)) == 0.0
    assert agreement(logits, logits) == 1.0


def test_soft_labels_sum_to_one():
    p = soft_labels(torch.randn(8, 10), 9.0)
    assert torch.allclose(p.sum(dim=1), torch.ones(8))


def test_soft_labels_by_class_averages_each_true_class():
    from sweetspot.core.metrics import soft_labels_by_class

    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [4.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 0])
    table = soft_labels_by_class(logits, labels, 2.0)
    expected_0 = (torch.softmax(logits[0] / 2, 0) + torch.softmax(logits[2] / 2, 0)) / 2
    assert torch.allclose(table[0], expected_0) and torch.allclose(table[1], torch.softmax(logits[1] / 2, 0))
    assert torch.isnan(table[2]).all()  # no example of class 2


def test_bias_shift_makes_the_student_predict_the_class_as_often_as_the_teacher():
    from sweetspot.core.metrics import bias_shift, shifted

    generator = torch.Generator().manual_seed(0)
    student = torch.randn(200, 5, generator=generator)
    student[:, 2] -= 5.0  # never predicted: the student never saw class 2
    teacher = torch.randn(200, 5, generator=generator)
    teacher[:37, 2] += 100.0  # the teacher predicts 2 on 37 inputs, and only on those
    teacher[37:, 2] -= 100.0
    b = bias_shift(student, teacher, 2)
    assert b > 0 and int((shifted(student, 2, b).argmax(dim=1) == 2).sum()) == 37
    never = teacher.index_fill(1, torch.tensor([2]), -1e9)  # the teacher never says 2 ...
    assert int((shifted(student, 2, bias_shift(student, never, 2)).argmax(dim=1) == 2).sum()) == 0


def test_bias_shift_lowers_the_bias_of_a_student_that_predicts_the_class_too_often():
    from sweetspot.core.metrics import bias_shift, shifted

    generator = torch.Generator().manual_seed(1)
    student = torch.randn(100, 4, generator=generator)
    student[:, 1] += 4.0  # says 1 almost always
    teacher = torch.randn(100, 4, generator=generator)
    teacher[:, 1] = -50.0
    teacher[:20, 1] = 50.0  # the teacher says 1 on 20 inputs
    b = bias_shift(student, teacher, 1)
    assert b < 0 and int((shifted(student, 1, b).argmax(dim=1) == 1).sum()) == 20
    everywhere = teacher.index_fill(1, torch.tensor([1]), 1e9)
    assert int((shifted(student, 1, bias_shift(student, everywhere, 1)).argmax(dim=1) == 1).sum()) == 100

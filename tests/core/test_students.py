"""students.py: stacked students equal students trained one by one, and trials share their random numbers."""

from dataclasses import replace

import pytest
import torch

from sweetspot.config import StudentConfig, config_from_dict
from sweetspot.core.seeds import student_seed
from sweetspot.core.stacking import Stacked
from sweetspot.core.students import OneByOne, train_student, train_students

N, C = 300, 5


def _problem(shape=(8,)):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, *shape, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    teacher = torch.randn(N, C, generator=g) * 3
    masks = torch.stack([torch.ones(N, dtype=torch.bool), *(y != k for k in range(C))])
    return x, y, teacher, masks


def _weights(model):
    return [p.detach() for p in model.parameters()]


@pytest.mark.parametrize(("net", "shape"), [
    (StudentConfig(epochs=3, batch_size=32), (8,)),  # linear: the batched-matmul path
    (StudentConfig(arch="mlp", options={"width": 16, "depth": 2}, epochs=2, batch_size=32), (8,)),
    (StudentConfig(arch="mlp", options={"width": 16, "depth": 1, "dropout": 0.3}, epochs=2, batch_size=32), (8,)),
    (StudentConfig(arch="convnet", options={"channels": [4], "pool": [1]}, epochs=1, batch_size=32), (1, 6, 6)),
    # two input channels, so that the channels-last layout differs; dropout: one mask for all copies
    (StudentConfig(arch="convnet", options={"channels": [3, 4], "pool": [1, 0], "hidden": [8], "dropout": 0.3,
                                            **{"stride": 1, "activation": "leaky_relu"}}, epochs=2, batch_size=32),
     (2, 6, 6)),
    (StudentConfig(epochs=2, schedule="exponential", lr_decay=0.5, optimizer="sgd", lr=0.1), (8,)),
], ids=["linear", "mlp", "mlp-dropout", "convnet", "convnet-dropout", "sgd-schedule"])
def test_stacked_students_equal_students_trained_one_by_one(net, shape):
    x, y, teacher, masks = _problem(shape)
    torch.manual_seed(7)
    stacked = train_students(net, x, teacher, y, C, masks, temperature=4.0, alpha=0.9,
                             generator=torch.Generator().manual_seed(7))
    assert isinstance(stacked, Stacked)
    assert stacked.dense == (net.arch != "convnet" and not net.options.get("dropout"))
    for w in stacked.weights:  # each copy's conv weights in the CPU's fast layout
        assert w.dim() != 5 or w[0].is_contiguous(memory_format=torch.channels_last)
    for s in range(len(masks)):
        torch.manual_seed(7)
        alone = train_student(net, x, teacher, y, C, temperature=4.0, alpha=0.9,
                              generator=torch.Generator().manual_seed(7), mask=masks[s])
        for a, b in zip(_weights(stacked.copy_of(s)), _weights(alone)):
            assert torch.allclose(a, b, atol=1e-5), (s, (a - b).abs().max())
        out = stacked(x[:10])
        assert out.shape == (len(masks), 10, C)
        assert torch.allclose(out[s], alone(x[:10]), atol=1e-5)


BATCH_NORM_CONVNET = {"channels": [4], "pool": [1], "batchnorm": True}


@pytest.mark.parametrize("net", [StudentConfig(epochs=2, batch_size=32),
                                 StudentConfig(arch="convnet", options=BATCH_NORM_CONVNET, epochs=1, batch_size=32)],
                         ids=["stacked", "one-by-one"])
def test_students_of_several_teachers_with_their_own_alpha_and_labels_equal_each_trained_alone(net):
    """A trial's stack: each teacher's students (``teacher_of``), then a labels-only student (alpha 0),
    with the hard labels of some examples only (``labelled``)."""
    shape = (8,) if net.arch == "linear" else (1, 6, 6)
    x, y, teacher, masks = _problem(shape)
    teachers = torch.stack([teacher, teacher.flip(1)])
    masks = masks[:3].repeat(2, 1)[:5]
    teacher_of, alphas = [0, 0, 0, 1, 1], [0.9, 0.9, 0.9, 0.9, 0.0]
    labelled = (torch.arange(N) % 4 == 0).expand(5, -1)
    torch.manual_seed(2)
    stacked = train_students(net, x, teachers, y, C, masks, temperature=4.0, alpha=alphas, teacher_of=teacher_of,
                             labelled=labelled, generator=torch.Generator().manual_seed(2))
    for s in range(5):
        torch.manual_seed(2)
        alone = train_student(net, x, teachers[teacher_of[s]], y, C, temperature=4.0, alpha=alphas[s],
                              generator=torch.Generator().manual_seed(2), mask=masks[s], labelled=labelled[s])
        for a, b in zip(_weights(stacked.copy_of(s)), _weights(alone)):
            assert torch.allclose(a, b, atol=1e-5), (s, (a - b).abs().max())
    w = _weights(stacked.copy_of(4))
    torch.manual_seed(2)
    other = train_student(net, x, teachers[1], y, C, temperature=4.0, alpha=0.9,
                          generator=torch.Generator().manual_seed(2), mask=masks[4], labelled=labelled[4])
    assert not all(torch.allclose(a, b, atol=1e-3) for a, b in zip(w, _weights(other)))  # alpha 0 is not 0.9


def test_students_that_differ_only_in_their_mask_learn_different_things():
    x, y, teacher, masks = _problem()
    torch.manual_seed(0)
    stacked = train_students(StudentConfig(epochs=3), x, teacher, y, C, masks, temperature=4.0, alpha=0.9,
                             generator=torch.Generator().manual_seed(0))
    weights = stacked.weights[0]  # S x C x D
    assert not torch.allclose(weights[0], weights[1])


def test_a_network_with_batch_norm_is_trained_one_by_one_and_answers_alike():
    x, y, teacher, masks = _problem((1, 6, 6))
    net = StudentConfig(arch="convnet", options={"channels": [4], "pool": [1], "batchnorm": True}, epochs=1)
    torch.manual_seed(3)
    students = train_students(net, x, teacher, y, C, masks[:3], temperature=4.0, alpha=0.9,
                              generator=torch.Generator().manual_seed(3))
    assert isinstance(students, OneByOne) and students(x[:4]).shape == (3, 4, C)
    torch.manual_seed(3)
    alone = train_student(net, x, teacher, y, C, temperature=4.0, alpha=0.9, generator=torch.Generator().manual_seed(3),
                          mask=masks[2])
    assert all(torch.equal(a, b) for a, b in zip(_weights(students.copy_of(2)), _weights(alone)))


def test_two_trials_with_different_teachers_give_their_students_the_same_random_numbers(monkeypatch):
    """Common random numbers: the students' initial weights, dropout and batch order depend on the
    study seed and student.seed, never on the trial (its seed, its teacher)."""
    import sweetspot.core.trial as trial_module
    from sweetspot.core.trial import TeacherParams, prepare, run_trial

    seen = []

    def recording(net, x, teacher_logits, y, n_classes, masks, *, generator, **kwargs):
        seen.append({"rng": torch.get_rng_state(), "order": generator.get_state(), "x": x, "masks": masks,
                     "teacher": teacher_logits})
        return train_students(net, x, teacher_logits, y, n_classes, masks, generator=generator, **kwargs)

    monkeypatch.setattr(trial_module, "train_students", recording)
    config = config_from_dict({"objectives": {"missing_class_recall": "maximize"},
                               "teacher": {"width": 16, "depth": 1}, "student": {"epochs": 1},
                               "distill": {"withheld_classes": [], "examples_per_class": 30}})
    splits = prepare(config, torch.device("cpu"))
    run_trial(config, splits, TeacherParams(32, 1), seed=1)
    run_trial(config, splits, TeacherParams(256, 3), seed=2)
    first, second = seen
    assert not torch.equal(first["teacher"], second["teacher"])  # the teachers differ ...
    assert torch.equal(first["rng"], second["rng"])  # ... the students' initial weights and dropout do not
    assert torch.equal(first["order"], second["order"])  # nor their batch order
    assert torch.equal(first["x"][:], second["x"][:]) and torch.equal(first["masks"], second["masks"])  # nor the data

    run_trial(replace(config, student=replace(config.student, seed=1)), splits, TeacherParams(32, 1), seed=1)
    assert not torch.equal(seen[2]["rng"], first["rng"])  # student.seed is the knob for student noise
    assert student_seed(config) != student_seed(replace(config, student=replace(config.student, seed=1)))

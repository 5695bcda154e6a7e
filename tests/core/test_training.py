import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sweetspot.core.training import (
    KD,
    Loop,
    channels_last,
    distill,
    kd_loss,
    label_smoothing_targets,
    make_optimizer,
    match_state_layouts,
    predict_logits,
    train_classifier,
)
from sweetspot.errors import TrainingDiverged


def test_label_smoothing_targets_match_the_papers_table_1():
    y = label_smoothing_targets(torch.tensor([3]), n_classes=10, a=0.6)[0]
    assert y[3].item() == pytest.approx(0.46)
    assert torch.allclose(y[torch.arange(10) != 3], torch.full((9,), 0.06))
    assert y.sum().item() == pytest.approx(1.0)


def _by_hand(s, t, y, T, alpha):
    """KD loss written out with plain Python: per example sum_k p_k (log p_k - log q_k)."""
    kl_total, ce_total = 0.0, 0.0
    for srow, trow, label in zip(s.tolist(), t.tolist(), y.tolist()):
        p = [math.exp(v / T) for v in trow]
        p = [v / sum(p) for v in p]
        q = [math.exp(v / T) for v in srow]
        q = [v / sum(q) for v in q]
        kl_total += sum(pk * (math.log(pk) - math.log(qk)) for pk, qk in zip(p, q))
        z = [math.exp(v) for v in srow]
        ce_total += -math.log(z[label] / sum(z))
    n = len(y)
    return (1 - alpha) * ce_total / n + alpha * T * T * kl_total / n  # batchmean: divide by n, not n * C


def test_kd_loss_matches_a_hand_computation_with_t_squared_and_batchmean():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g) * 3
    y = torch.tensor([0, 2, 4, 1])
    for T, alpha in [(9.0, 0.99), (1.0, 0.5), (4.0, 1.0)]:
        assert kd_loss(s, t, y, T, alpha).item() == pytest.approx(_by_hand(s, t, y, T, alpha), rel=1e-5)


def test_kd_loss_alpha_weights_the_soft_term():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g)
    y = torch.randint(0, 10, (6,), generator=g)
    assert kd_loss(s, t, y, 9.0, 0.0).item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)
    soft_only = kd_loss(s, t, y, 9.0, 1.0).item()
    expected = 81 * F.kl_div(F.log_softmax(s / 9, 1), F.softmax(t / 9, 1), reduction="batchmean").item()
    assert soft_only == pytest.approx(expected, rel=1e-5)


def test_kd_loss_is_zero_soft_term_for_identical_logits():
    z = torch.randn(3, 10)
    assert kd_loss(z, z, torch.zeros(3, dtype=torch.long), 9.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)


def _problem(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    return x, y


def test_train_classifier_learns_and_is_deterministic():
    x, y = _problem()
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
        history = train_classifier(
            model, x, y, Loop(make_optimizer("adam", model, 1e-2), 32, 20, torch.Generator().manual_seed(0)),
        )
        results.append((history, predict_logits(model, x)))
    (h1, z1), (h2, z2) = results
    assert h1 == h2 and torch.equal(z1, z2)
    assert h1[-1] < h1[0] / 3
    assert (z1.argmax(1) == y).float().mean() > 0.9


def test_train_classifier_keeps_the_last_short_batch():
    x, y = _problem(n=100)
    model = nn.Linear(8, 4)
    seen = []
    model.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    train_classifier(model, x, y, Loop(make_optimizer("sgd", model, 0.1), 64, 1, torch.Generator().manual_seed(0)))
    assert seen == [64, 36]


def test_train_classifier_raises_when_the_loss_diverges():
    x, y = _problem()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    with pytest.raises(TrainingDiverged, match="teacher loss became nan in epoch 1"):
        train_classifier(model, x * 1e3, y, Loop(make_optimizer("sgd", model, 1e12), 32, 3,
                                                 torch.Generator().manual_seed(0)))


def test_distill_uses_only_the_cached_teacher_logits():
    # a student distilled at alpha = 1 from logits that encode the labels learns the labels
    x, y = _problem()
    teacher_logits = F.one_hot(y, 4).float() * 5
    torch.manual_seed(0)
    student = nn.Linear(8, 4)
    distill(student, x, teacher_logits, torch.zeros_like(y),
            Loop(make_optimizer("adam", student, 0.05), 32, 30, torch.Generator().manual_seed(0)), KD(2.0, 1.0))
    assert (predict_logits(student, x).argmax(1) == y).float().mean() > 0.85


def test_predict_logits_stay_float32_inside_a_bfloat16_autocast():
    from sweetspot.core.training import precision_context

    model = torch.nn.Linear(8, 3)
    x = torch.randn(5, 8)
    with precision_context("bfloat16", x.device):
        assert model(x).dtype == torch.bfloat16  # training steps run in bfloat16...
        logits = predict_logits(model, x)
    assert logits.dtype == torch.float32  # ...soft labels and metrics do not
    assert torch.equal(logits, predict_logits(model, x))


def test_the_paper_convention_is_eq_4_without_t_squared():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g) * 3
    y = torch.tensor([1, 0, 4, 4])
    for T, alpha in [(9.0, 0.99), (3.0, 0.5)]:
        soft_only_hinton = _by_hand(s, t, y, T, 1.0)  # alpha T^2 KL
        expected = (1 - alpha) * _by_hand(s, t, y, T, 0.0) + alpha * soft_only_hinton / (T * T)
        assert kd_loss(s, t, y, T, alpha, "paper").item() == pytest.approx(expected, rel=1e-5)
        assert kd_loss(s, t, y, T, alpha, "hinton").item() == pytest.approx(_by_hand(s, t, y, T, alpha), rel=1e-5)


def test_per_example_losses_of_stacked_students_are_each_students_own():
    from sweetspot.core.training import kd_loss_per_example, masked_mean

    g = torch.Generator().manual_seed(3)
    stacked = torch.randn(3, 6, 5, generator=g)  # 3 students, 6 examples, 5 classes
    t, y = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    losses = kd_loss_per_example(stacked, t, y, 4.0, 0.9)
    assert losses.shape == (3, 6)
    for s in range(3):
        assert losses[s].mean().item() == pytest.approx(kd_loss(stacked[s], t, y, 4.0, 0.9).item(), rel=1e-6)
    mask = torch.tensor([[True] * 6, [True, False] * 3, [False] * 6])
    expected = losses[0].mean() + losses[1][mask[1]].mean() + 0.0  # a student that keeps nothing adds 0
    assert masked_mean(losses, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_flip_crop_shifts_each_image_within_its_padding_and_flips_half():
    from sweetspot.core.training import PAD, flip_crop

    x = torch.arange(2 * 1 * 6 * 7, dtype=torch.float32).reshape(2, 1, 6, 7).repeat(50, 1, 1, 1)
    out = flip_crop(x, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)  # the same draws, in the same order
    dy, dx = torch.randint(0, 2 * PAD + 1, (100,), generator=g), torch.randint(0, 2 * PAD + 1, (100,), generator=g)
    flip = torch.rand(100, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (PAD,) * 4)
    for n in range(100):
        expected = padded[n, :, dy[n] : dy[n] + 6, dx[n] : dx[n] + 7]
        assert torch.equal(out[n], expected.flip(-1) if flip[n] else expected)
    assert 20 < int(flip.sum()) < 80 and len(set(dy.tolist())) > 5  # both kinds of draw vary
    assert torch.equal(flip_crop(x, torch.Generator().manual_seed(0)), out)  # seeded


def test_a_conv_network_trains_channels_last_with_its_optimizer_state_in_the_same_layout():
    """The CPU's fast conv layout (benchmarks/conv_speed.py). A fused optimizer reads a parameter and
    its state as flat memory, so a state in another layout (from a checkpoint written before) would
    pair the wrong elements: it is copied into each parameter's layout."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    optimizer = make_optimizer("adam", model, 1e-2)
    conv = model[0].weight
    old = torch.arange(conv.numel(), dtype=torch.float32).reshape(conv.shape)  # contiguous, as before
    optimizer.state[conv] = {"step": torch.tensor(1.0), "exp_avg": old.clone(), "exp_avg_sq": old.clone()}
    channels_last(model)
    match_state_layouts(optimizer)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    for key in ("exp_avg", "exp_avg_sq"):
        state = optimizer.state[conv][key]
        assert state.stride() == conv.stride() and torch.equal(state, old)  # the same values, the layout moved
    x, y = torch.randn(64, 2, 6, 6), torch.randint(0, 3, (64,))
    history = train_classifier(model, x, y, Loop(optimizer, 16, 3, torch.Generator().manual_seed(0)))
    assert math.isfinite(history[-1]) and conv.is_contiguous(memory_format=torch.channels_last)
    dense = nn.Sequential(nn.Linear(3, 2))
    channels_last(dense)  # no convs: nothing to do
    assert dense[0].weight.is_contiguous()


def test_a_fused_step_with_a_state_in_another_layout_is_what_the_layout_match_prevents():
    """Why match_state_layouts exists: fused Adam pairs a channels-last parameter with a contiguous
    state element by element in memory, and its step differs from the plain one."""
    torch.manual_seed(0)
    weight = torch.randn(4, 3, 3, 3).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(4, 3, 3, 3).contiguous(memory_format=torch.channels_last)
    state = torch.rand(4, 3, 3, 3) + 0.1  # contiguous

    def step(fused: bool, match: bool) -> torch.Tensor:
        p = nn.Parameter(weight.clone())
        optimizer = torch.optim.Adam([p], lr=0.1, fused=fused, foreach=None if fused else False)
        optimizer.state[p] = {"step": torch.tensor(3.0), "exp_avg": state.clone(), "exp_avg_sq": state.clone()}
        if match:
            match_state_layouts(optimizer)
        p.grad = grad.clone()
        optimizer.step()
        return p.detach()

    plain = step(fused=False, match=False)
    assert not torch.allclose(step(fused=True, match=False), plain, atol=1e-4)  # silently wrong
    assert torch.allclose(step(fused=True, match=True), plain, atol=1e-6)


def test_with_labelled_examples_the_hard_term_averages_over_them_and_the_soft_term_over_all():
    """Semi-supervised distillation (``distill.labels_per_class``): one step over the whole set, whose
    recorded loss is the loss at the initial weights."""
    from sweetspot.core.training import distill, kd_parts

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=g), torch.randint(0, 4, (40,), generator=g)
    teacher = torch.randn(40, 4, generator=g)
    labelled, kept = torch.arange(40) % 5 == 0, torch.arange(40) % 3 != 0
    student = torch.nn.Linear(6, 4)
    log_p = torch.log_softmax(teacher / 3.0, dim=1)
    with torch.no_grad():
        hard, soft = kd_parts(student(x), log_p, log_p.exp(), y, 3.0)
    expected = 0.2 * hard[labelled & kept].mean() + 0.8 * 9.0 * soft[kept].mean()
    history = distill(student, x, teacher, y, Loop(torch.optim.SGD(student.parameters(), lr=0.0), 40, 1,
                                                   torch.Generator()), KD(3.0, 0.8), mask=kept, labelled=labelled)
    assert history[0] == pytest.approx(float(expected), rel=1e-5)
    everything = distill(student, x, teacher, y, Loop(torch.optim.SGD(student.parameters(), lr=0.0), 40, 1,
                                                      torch.Generator()), KD(3.0, 0.8), mask=kept)
    assert everything[0] != pytest.approx(history[0], rel=1e-3)

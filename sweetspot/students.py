"""Students: distilled from a teacher's cached logits, the same way in trials and experiments.

A trial trains several students at once: one on the whole transfer set and one per missing class k
(the transfer set without k, the paper's Table 5). They share their architecture, initial weights and
batch order, so they are trained as one stacked model: their weights stacked along a first dimension
and one batched forward pass (``torch.func.vmap`` over ``functional_call``); each student masks the
examples it must not see. Stacked training equals training the students one after another
(``tests/test_students.py``), at a fraction of the cost.

Initial weights (and dropout masks) come from torch's global RNG and the batch order from
``generator``: the caller seeds both.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from sweetspot.config import StudentConfig, StudyConfig, student_seed
from sweetspot.models import build_model
from sweetspot.training import distill, make_optimizer, make_scheduler

DENSE = (nn.Flatten, nn.Linear, nn.ReLU)  # layers of the batched-matmul path


class Stacked(nn.Module):
    """S copies of one network as one module: stacked parameters (S x ...), one forward pass
    returning S x B x C. Each copy starts from ``base``'s weights.

    A Sequential of Flatten, Linear and ReLU layers (the baseline student, MLP students without
    dropout) runs as batched matrix products: the first layer of all copies is one matrix product
    with their weights side by side (the input is shared), the next ones ``baddbmm``. Any other
    network runs through ``torch.func.vmap``, which broadcasts the input to every copy (3 to 5 times
    slower here for a linear student); its dropout draws one mask for all copies (``randomness="same"``).
    """

    def __init__(self, base: nn.Module, copies: int) -> None:
        super().__init__()
        params, _ = stack_module_state([base] * copies)
        self.names = list(params)
        self.weights = nn.ParameterList(nn.Parameter(p.detach()) for p in params.values())  # stacking copied them
        self._base = [copy.deepcopy(base).to("meta")]  # the computation only: not a submodule, no weights of its own
        self.dense = isinstance(base, nn.Sequential) and all(isinstance(m, DENSE) for m in base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = dict(zip(self.names, self.weights))
        if self.dense:
            return self._dense(x, weights)
        base = self._base[0]

        def one(w: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
            return functional_call(base, w, (inputs,))

        return vmap(one, in_dims=(0, None), randomness="same")(weights, x)

    def _dense(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        h, stacked = x, False  # h: B x ... until the first Linear, then S x B x features
        for i, layer in enumerate(self._base[0]):
            if isinstance(layer, nn.Flatten):
                h = h.flatten(start_dim=layer.start_dim + stacked)
            elif isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            else:
                w, b = weights[f"{i}.weight"], weights.get(f"{i}.bias")
                copies, out, fan_in = w.shape
                if not stacked:  # one product for all copies: B x in @ in x (S * out)
                    h = F.linear(h, w.reshape(copies * out, fan_in), None if b is None else b.reshape(-1))
                    h = h.view(len(h), copies, out).transpose(0, 1)
                    stacked = True
                elif b is None:
                    h = torch.bmm(h, w.transpose(1, 2))
                else:
                    h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        return h

    def train(self, mode: bool = True) -> Stacked:
        self._base[0].train(mode)  # dropout follows
        return super().train(mode)

    def copy_of(self, s: int) -> nn.Module:
        """Student ``s`` as a network of its own (for weights files and tests)."""
        single = copy.deepcopy(self._base[0]).to_empty(device=self.weights[0].device)
        single.load_state_dict({n: w[s].detach().clone() for n, w in zip(self.names, self.weights)}, strict=False)
        return single


def seeded_for_students(config: StudyConfig) -> torch.Generator:
    """Seed torch's global RNG (the students' initial weights and dropout) and return the generator of
    their batch order, both from the study's student seed: the same in every trial and experiment
    (common random numbers)."""
    seed = student_seed(config)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def stackable(net: nn.Module) -> bool:
    """Whether copies of ``net`` can run stacked: no buffers (batch norm's running statistics would
    be updated inside the vectorised pass, which torch.func does not allow)."""
    return not any(True for _ in net.buffers())


def train_student(
    net: StudentConfig,
    x: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    *,
    temperature: float,
    alpha: float,
    generator: torch.Generator,
    epochs: int | None = None,
    convention: str = "hinton",
    mask: torch.Tensor | None = None,
) -> nn.Module:
    """``net`` distilled on (x, y) from ``teacher_logits`` (the teacher's logits on x, computed
    once), with its optimizer, schedule and precision, for ``epochs`` (default: ``net.epochs``);
    ``mask`` (N) keeps it from the examples marked False, within the same batches."""
    epochs = net.epochs if epochs is None else epochs
    student = build_model(net, tuple(x.shape[1:]), n_classes).to(x.device)
    _distill(net, student, x, teacher_logits, y, temperature, alpha, generator, epochs, convention, mask)
    return student


def train_students(
    net: StudentConfig,
    x: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    masks: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    generator: torch.Generator,
    epochs: int | None = None,
    convention: str = "hinton",
) -> nn.Module:
    """S students at once, student s on the examples ``masks[s]`` (S x N) keeps, all from the same
    initial weights in the same batch order: a ``Stacked`` model whose forward pass gives S x B x C.
    A network that cannot be stacked (batch norm) is trained one student after another, each from the
    same initial weights and batch order, and returned in the same stacked form."""
    epochs = net.epochs if epochs is None else epochs
    base = build_model(net, tuple(x.shape[1:]), n_classes).to(x.device)
    if stackable(base):
        stacked = Stacked(base, len(masks))
        _distill(net, stacked, x, teacher_logits, y, temperature, alpha, generator, epochs, convention, masks)
        return stacked
    start, rng = generator.get_state(), torch.get_rng_state()
    students = []
    for mask in masks:
        generator.set_state(start)
        torch.set_rng_state(rng)
        student = copy.deepcopy(base)
        _distill(net, student, x, teacher_logits, y, temperature, alpha, generator, epochs, convention, mask)
        students.append(student)
    return OneByOne(students)


class OneByOne(nn.Module):
    """Students trained one by one, answering like a Stacked model (S x B x C)."""

    def __init__(self, students: list[nn.Module]) -> None:
        super().__init__()
        self.students = nn.ModuleList(students)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([student(x) for student in self.students])

    def copy_of(self, s: int) -> nn.Module:
        return self.students[s]


def _distill(
    net: StudentConfig, student: nn.Module, x: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
    temperature: float, alpha: float, generator: torch.Generator, epochs: int, convention: str,
    mask: torch.Tensor | None,
) -> None:
    optimizer = make_optimizer(net.optimizer, student, net.lr)
    distill(
        student, x, teacher_logits, y, temperature=temperature, alpha=alpha, optimizer=optimizer,
        batch_size=net.batch_size, epochs=epochs, generator=generator,
        scheduler=make_scheduler(net.schedule, optimizer, epochs, net.lr_decay), precision=net.precision,
        convention=convention, mask=mask,
    )

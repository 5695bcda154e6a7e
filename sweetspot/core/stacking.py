"""Several networks of one architecture as one module: stacked weights, one optimizer, one pass.

Two uses. A trial's students (one per missing class) share their initial weights and their batches:
the input is shared (B x ...), the answer S x B x C, and a dense student runs as batched matrix
products (its first layer one product for all copies). A trial's teacher seeds differ in their
initial weights, batch order and dropout masks: each copy gets its own batch (S x B x ...) and RNG
state, and runs its own layers; what the copies share is one optimizer step, one backward pass and
one loop. A network with buffers (batch norm) is not stacked (``stackable``): the callers train its
copies one after another.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

DENSE = (nn.Flatten, nn.Linear, nn.ReLU)  # layers of the batched-matmul path
PER_COPY_DENSE = (*DENSE, nn.Dropout)  # ... and of the per-copy one, where each copy draws its own masks
RngState = tuple[torch.Tensor, torch.Tensor | None]  # torch's CPU RNG state, and the device's on CUDA


def get_rng(device: torch.device) -> RngState:
    """The global RNG state a network on ``device`` draws its dropout masks from."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_rng(state: RngState, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda" and state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


class _StackedLinear(torch.autograd.Function):
    """``h @ w^T + b`` for S copies at once (h: S x B x in, w: S x out x in, b: S x out or None), whose
    backward computes the weight gradient directly in the weights' layout: autograd's own for
    ``baddbmm(b, h, w.mT)`` computes it for ``w.mT`` and hands back a transposed tensor, which is then
    copied into the weights' layout at every step (a strided copy of every weight matrix)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(h, w)
        ctx.has_bias = b is not None
        out = torch.bmm(h, w.transpose(1, 2)) if b is None else torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, w = ctx.saved_tensors
        grad_h = torch.bmm(g, w) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(g.transpose(1, 2), h) if ctx.needs_input_grad[1] else None  # fresh, in w's layout
        grad_b = g.sum(dim=1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_h, grad_w, grad_b


def _channels_last_copies(weight: torch.Tensor) -> torch.Tensor:
    """Stacked conv weights (S x O x I x kH x kW) laid out so that each copy's slice is channels-last,
    the CPU's fast conv layout; any other tensor as it is."""
    if weight.dim() != 5:
        return weight
    copies, out, fan_in, height, width = weight.shape  # strides set explicitly: with one input channel a
    # permuted copy would come back as contiguous, and the first conv's output with it
    strides = (out * fan_in * height * width, fan_in * height * width, 1, width * fan_in, fan_in)
    return torch.empty_strided(weight.shape, strides, dtype=weight.dtype, device=weight.device).copy_(weight)


def stackable(net: nn.Module) -> bool:
    """Whether copies of ``net`` can run stacked: no buffers (batch norm's running statistics would
    be updated inside the vectorised pass, which torch.func does not allow)."""
    return not any(True for _ in net.buffers())


class Stacked(nn.Module):
    """``models`` (same architecture) as one module with stacked parameters (S x ...).

    ``forward(x)`` runs every copy on the same input (students): a dense network as batched matrix
    products; any other, on the CPU, one copy after another, each with the torch RNG state the first
    started from, so that dropout draws one mask for all copies (a conv net's copies in the CPU's
    channels-last layout: 11 General students 1.8 to 3.3 x as fast as through ``torch.func.vmap``, whose
    grouped convolutions oneDNN runs slowly, benchmarks/conv_speed.py); on a GPU through ``vmap``,
    with one mask for all copies too (``randomness="same"``).

    ``forward(x, per_copy=True)`` runs copy s on ``x[s]`` (teacher seeds): each copy through the
    network's own layers with its slice of the stacked weights and, in training, with ``rng[s]`` (its
    torch RNG state) swapped in around it, so that its dropout masks, like every other operation, are
    those of the same network trained alone from that state.
    """

    def __init__(self, models: Sequence[nn.Module], rng: Sequence[RngState] | None = None) -> None:
        super().__init__()
        params, _ = stack_module_state(list(models))
        self.names = list(params)
        on_cpu = next(iter(params.values())).device.type == "cpu"
        self.weights = nn.ParameterList(  # stacking copied them
            nn.Parameter(_channels_last_copies(p.detach()) if on_cpu else p.detach()) for p in params.values()
        )
        base = models[0]
        self._base = [copy.deepcopy(base).to("meta")]  # the computation only: not a submodule, no weights of its own
        self.rng = list(rng) if rng is not None else None  # per-copy RNG states, advanced by per-copy passes
        self.dense = isinstance(base, nn.Sequential) and all(isinstance(m, DENSE) for m in base)
        self.dense_per_copy = isinstance(base, nn.Sequential) and all(isinstance(m, PER_COPY_DENSE) for m in base)

    def forward(self, x: torch.Tensor, per_copy: bool = False) -> torch.Tensor:
        weights = dict(zip(self.names, self.weights))
        if per_copy:
            return self._dense_per_copy(x, weights) if self.dense_per_copy else self._per_copy(x, weights)
        if self.dense:
            return self._dense(x, weights)
        if x.device.type == "cpu":
            return self._one_after_another(x, weights)
        base = self._base[0]

        def one(w: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
            return functional_call(base, w, (inputs,))

        return vmap(one, in_dims=(0, None), randomness="same")(weights, x)

    def _one_after_another(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """Every copy on the same ``x``, each from the RNG state the first started from (in training),
        so that their dropout masks are the same, as vmap's ``randomness="same"`` draws them."""
        start = get_rng(x.device) if self.training else None

        def same_rng(s: int) -> contextlib.AbstractContextManager[None]:
            if start is not None:
                set_rng(start, x.device)
            return contextlib.nullcontext()

        return self._each_copy([x] * len(self.weights[0]), weights, same_rng)

    def _per_copy(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """Copy s on ``x[s]`` with its own weights and, in training, its own RNG state."""
        return self._each_copy(x.unbind(0), weights, lambda s: self._own_rng(s, x.device))

    def _each_copy(
        self, inputs: Sequence[torch.Tensor], weights: dict[str, torch.Tensor],
        rng: Callable[[int], contextlib.AbstractContextManager[None]],
    ) -> torch.Tensor:
        """Copy s on ``inputs[s]`` through the network's own layers, inside ``rng(s)``, with its
        weights as views of the stacked ones (so that their gradients land in one stacked tensor)."""
        base = self._base[0]
        slices = {n: w.unbind(0) for n, w in weights.items()}
        outputs = []
        for s, x in enumerate(inputs):
            with rng(s):
                outputs.append(functional_call(base, {n: w[s] for n, w in slices.items()}, (x,)))
        return torch.stack(outputs)

    @contextlib.contextmanager
    def _own_rng(self, s: int, device: torch.device) -> Iterator[None]:
        """Copy ``s``'s RNG state as torch's global one for the block, in training (eval draws nothing),
        then advanced in its place and the outer state put back."""
        if self.rng is None or not self.training:
            yield
            return
        outer = get_rng(device)
        set_rng(self.rng[s], device)
        try:
            yield
        finally:
            self.rng[s] = get_rng(device)
            set_rng(outer, device)

    def _dense_per_copy(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """Copy s on ``x[s]`` (S x B x ...) as batched matrix products, each copy's dropout masks from
        its own RNG state in the order the network alone draws them."""
        h = x
        for i, layer in enumerate(self._base[0]):
            if isinstance(layer, nn.Flatten):
                h = h.flatten(start_dim=layer.start_dim + 1)
            elif isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            elif isinstance(layer, nn.Dropout):
                h = self._dropout(h, layer.p)
            else:
                h = _StackedLinear.apply(h, weights[f"{i}.weight"], weights.get(f"{i}.bias"))
        return h

    def _dropout(self, h: torch.Tensor, p: float) -> torch.Tensor:
        """``F.dropout`` of each copy, its Bernoulli(1 - p) noise drawn from its own RNG state."""
        if not self.training or p == 0:
            return h
        noise = torch.empty_like(h)
        for s in range(len(h)):
            with self._own_rng(s, h.device):
                noise[s].bernoulli_(1 - p)
        return h * noise.div_(1 - p)

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
        """Copy ``s`` as a network of its own (for weights files, checkpoints and tests)."""
        single = copy.deepcopy(self._base[0]).to_empty(device=self.weights[0].device)
        single.load_state_dict({n: w[s].detach().clone() for n, w in zip(self.names, self.weights)}, strict=False)
        return single

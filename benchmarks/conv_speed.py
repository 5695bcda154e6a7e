"""How fast the paper's conv networks train here, against this machine's own conv rate.

Prints, for the Fashion-MNIST small teacher (the Keras recipe, 33.6 M multiply-adds per image
forward) at batch 32, 256 and 1024 and for the General student: images per second, the
multiply-adds achieved (a training step counted as 3 forward passes: forward, input gradients,
weight gradients) and their fraction of the machine's conv rate, measured in the same run on one
large conv (64 x 256 x 14 x 14 -> 256 channels, 3 x 3, forward and backward). Each network runs as
sweetspot trains it (Adam, fused; random images of the dataset's shape, so only speed is measured),
in each layout and precision that may pay: float32 (contiguous), channels_last, bfloat16 autocast
where the CPU has bfloat16 units (avx512_bf16 or amx_bf16), and torch.compile. Then the time of one
step of 11 stacked General students (a trial's full student and one per missing class, as
``sweetspot.core.stacking.Stacked`` runs them) against one student's.

Targets (issue 21): the teacher's step at batch 256 reaches at least 0.5 of the machine's conv
rate; 11 stacked General students cost at most 3 x one student.

    .venv/bin/python benchmarks/conv_speed.py [--steps 5] [--no-compile] [--stack 11]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from machine import FLAGS, cpu, describe

from sweetspot.config import NetConfig
from sweetspot.core.models import build_model, forward_macs
from sweetspot.core.stacking import Stacked

SHAPE = (1, 28, 28)
TEACHER, STUDENT = "paper-fashion-mnist-small", "paper-fashion-mnist-general"


def timed(step: Callable[[], None], steps: int, warmup: int = 2) -> float:
    """The median seconds of ``steps`` calls of ``step``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_rate(steps: int) -> dict[str, float]:
    """Multiply-adds per second of one large conv's forward and backward (3 x its forward MACs), in
    each layout; the faster is the machine's conv rate."""
    rates = {}
    for layout, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(memory_format=fmt)
        x = torch.randn(64, 256, 14, 14).contiguous(memory_format=fmt).requires_grad_()

        def step(conv: torch.nn.Module = conv, x: torch.Tensor = x) -> None:
            conv(x).sum().backward()

        rates[layout] = 3 * 64 * 14 * 14 * 256 * 256 * 9 / timed(step, steps)
    return rates


def bf16_units() -> bool:
    return any("bf16" in flag for flag in cpu()[1] & set(FLAGS))


def train_step(model: torch.nn.Module, batch: int, layout: str, precision: str) -> Callable[[], None]:
    """One Adam step of ``model`` on a random batch, in that memory layout and precision."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(batch, *SHAPE).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bfloat16" else \
        contextlib.nullcontext

    def step() -> None:
        with autocast():
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def variants(compile_too: bool) -> list[tuple[str, str, str, bool]]:
    """(label, layout, precision, compiled) for every variant this machine can run."""
    out = [("float32", "contiguous", "float32", False), ("channels_last", "channels_last", "float32", False)]
    if bf16_units():
        out.append(("bfloat16 autocast", "contiguous", "bfloat16", False))
    if compile_too:
        out.append(("torch.compile", "contiguous", "float32", True))
    return out


def network(name: str, compiled: bool) -> torch.nn.Module:
    model = build_model(NetConfig(arch=name), SHAPE, 10)
    return torch.compile(model) if compiled else model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per figure (median; default: 5)")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256, 1024], help="teacher batch sizes")
    parser.add_argument("--student-batch", type=int, default=256, help="the General student's batch (default 256)")
    parser.add_argument("--stack", type=int, default=11, help="stacked students (default: 11, 1 + 10 classes)")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile (it compiles for minutes)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(describe())
    if not bf16_units():
        print("bfloat16 autocast: not tried, this CPU has no bfloat16 units (avx512_bf16, amx_bf16)")
    rates = machine_rate(args.steps)
    peak = max(rates.values())
    print("machine conv rate (one 64 x 256 x 14 x 14 -> 256 conv, forward and backward): "
          + ", ".join(f"{k} {v / 1e9:.1f} GMAC/s" for k, v in rates.items()) + f"; the rate: {peak / 1e9:.1f}\n")
    print("| network | batch | variant | images/s | GMAC/s | fraction of the conv rate |")
    print("|---|---|---|---|---|---|")
    rows = [(TEACHER, b) for b in args.batches] + [(STUDENT, args.student_batch)]
    for name, batch in rows:
        macs = 3 * forward_macs(build_model(NetConfig(arch=name), SHAPE, 10), SHAPE) * batch
        for label, layout, precision, compiled in variants(not args.no_compile):
            start = time.perf_counter()
            step = train_step(network(name, compiled), batch, layout, precision)
            seconds = timed(step, args.steps)
            extra = f" (compiling and warm-up {time.perf_counter() - start - args.steps * seconds:.0f} s)" \
                if compiled else ""
            print(f"| {name} | {batch} | {label}{extra} | {batch / seconds:,.0f} | {macs / seconds / 1e9:.1f} | "
                  f"{macs / seconds / peak:.2f} |", flush=True)
    print()
    stacked_students(args.stack, args.student_batch, args.steps)


def stacked_students(copies: int, batch: int, steps: int) -> None:
    """One step of ``copies`` General students on one batch, as a trial trains them (``Stacked``: on
    the CPU one copy after another, channels-last), and through ``torch.func.vmap`` (grouped
    convolutions, the path before), against one student alone in each layout."""
    from torch.func import functional_call, vmap

    one = build_model(NetConfig(arch=STUDENT), SHAPE, 10)
    alone = {layout: timed(train_step(build_model(NetConfig(arch=STUDENT), SHAPE, 10), batch, layout, "float32"),
                           steps) for layout in ("contiguous", "channels_last")}
    stacked = Stacked([one] * copies)
    base = stacked._base[0]
    x = torch.randn(batch, *SHAPE)
    y = torch.randint(0, 10, (batch,)).repeat(copies)

    def vmapped() -> torch.Tensor:
        weights = dict(zip(stacked.names, stacked.weights))
        return vmap(lambda w, inputs: functional_call(base, w, (inputs,)), in_dims=(0, None),
                    randomness="same")(weights, x)

    for label, forward in (("Stacked (one after another, channels_last)", stacked), ("torch.func.vmap", vmapped)):
        optimizer = torch.optim.Adam(stacked.parameters(), lr=1e-3, fused=True)

        def step(forward=forward, optimizer=optimizer) -> None:
            loss = F.cross_entropy((forward(x) if forward is stacked else forward()).flatten(0, 1), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        together = timed(step, steps)
        print(f"{copies} General students at batch {batch}, {label}: {together * 1e3:.0f} ms a step; "
              + "; ".join(f"{together / t:.1f} x one student {layout} ({t * 1e3:.1f} ms)"
                          for layout, t in alone.items()) + " (target: at most 3 x)", flush=True)

if __name__ == "__main__":
    main()

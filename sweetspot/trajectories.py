"""A teacher's training path: resume from the longest stored prefix, train the rest, watch each epoch.

Everything that makes two runs of a path identical is carried in a checkpoint: weights, optimizer
state, schedule state, the batch-order generator and torch's global RNG (initial weights of the
student, dropout). A run resumed from epoch k therefore continues exactly as a run from scratch
would after k epochs (``tests/test_trajectories.py`` checks the metrics are equal). A schedule that
reads the total number of epochs (cosine) makes every run its own path: such runs never share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sweetspot.checkpoints import CheckpointStore
from sweetspot.config import NetConfig
from sweetspot.data import Splits
from sweetspot.metrics import accuracy, normalized_entropy
from sweetspot.models import build_model
from sweetspot.training import make_optimizer, make_scheduler, predict_logits, train_classifier

Point = dict[str, float]  # one epoch of the teacher: {"epoch", "entropy" (at T), "accuracy"} on validation inputs
Watch = Callable[[Point], str | None]  # an epoch's point -> why to stop now, or None to go on


@dataclass
class TeacherRun:
    teacher: nn.Module
    epochs_trained: int  # by this run
    epochs_reused: int  # restored from a checkpoint
    curve: list[Point] | None  # every epoch's point when watched, else None
    stopped: str | None = None  # why the watch stopped the run before its last epoch
    generator: torch.Generator | None = None  # the batch-order generator, where the run left it


def shares_path(net: NetConfig) -> bool:
    """False for a schedule that depends on the total number of epochs: such paths diverge from epoch 1."""
    return net.schedule != "cosine"


def seeded_run(
    net: NetConfig, splits: Splits, batch_size: int, epochs: int, lr: float, seed: int, **kwargs: Any
) -> TeacherRun:
    """``run_teacher`` seeded by ``seed``: initial weights and dropout from torch's global RNG, the
    batch order from a generator, both set from ``seed``. The one place a teacher is seeded, so that
    trials, experiments and `sweetspot teacher` train the same teacher for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return run_teacher(net, splits, batch_size, epochs, lr, generator, **kwargs)


def train_teacher(net: NetConfig, splits: Splits, batch_size: int, epochs: int, lr: float, seed: int) -> nn.Module:
    """``net`` trained from scratch on the whole training split with hard labels, seeded as a trial seeds it."""
    return seeded_run(net, splits, batch_size, epochs, lr, seed).teacher


def run_teacher(
    net: NetConfig,
    splits: Splits,
    batch_size: int,
    epochs: int,
    lr: float,
    generator: torch.Generator,
    *,
    store: CheckpointStore | None = None,
    key: str | None = None,
    watch: Watch | None = None,
    temperature: float = 1.0,
) -> TeacherRun:
    """Train ``net`` for ``epochs`` epochs, continuing ``key``'s longest stored prefix when ``store``
    has one, and save a checkpoint where the run ends. ``watch`` (with the entropy at
    ``temperature``) sees every epoch, replayed ones included, and may stop the run."""
    device = splits.x_train.device
    teacher = build_model(net, splits.input_shape, splits.n_classes).to(device)
    optimizer = make_optimizer(net.optimizer, teacher, lr)
    scheduler = make_scheduler(net.schedule, optimizer, epochs, net.lr_decay)
    sharing = store is not None and key is not None and shares_path(net)
    curve: list[Point] | None = [] if watch is not None else None
    done = 0
    if sharing:
        assert store is not None and key is not None

        # a watched run needs the stored epochs' curve, measured at its own T
        def measured_here(s: dict[str, Any]) -> bool:
            return watch is None or (s["curve"] is not None and s["temperature"] == temperature)

        state = store.load(key, epochs, device, accept=measured_here)
        if state is not None:
            _restore(state, teacher, optimizer, scheduler, generator, device)
            done = state["epoch"]
            if watch is not None:
                for point in state["curve"]:  # the stored epochs pass the same rule as trained ones
                    reason = watch(point)
                    if reason is not None:
                        stored = state["curve"][: int(point["epoch"])]
                        return TeacherRun(teacher, 0, int(point["epoch"]), stored, reason, generator)
                curve = list(state["curve"])

    stopped: str | None = None
    every = store.every if sharing and store is not None else 0

    def after_epoch(epoch: int) -> bool:
        nonlocal stopped
        if watch is not None and curve is not None:
            logits = predict_logits(teacher, splits.x_val)
            point = {
                "epoch": epoch,
                "entropy": normalized_entropy(logits, temperature),
                "accuracy": accuracy(logits, splits.y_val),
            }
            curve.append(point)
            stopped = watch(point)
        if every and epoch % every == 0 and epoch < epochs and stopped is None:
            assert store is not None and key is not None
            state = _capture(epoch, teacher, optimizer, scheduler, generator, device, curve, temperature)
            store.save(key, epoch, state)
        return stopped is not None

    last = done
    if epochs > done:
        history = train_classifier(
            teacher,
            splits.x_train,
            splits.y_train,
            optimizer=optimizer,
            batch_size=batch_size,
            epochs=epochs - done,
            generator=generator,
            scheduler=scheduler,
            first_epoch=done + 1,
            after_epoch=after_epoch if watch is not None or every else None,
            precision=net.precision,
        )
        last = done + len(history)
    if sharing and last > done:
        assert store is not None and key is not None
        store.save(key, last, _capture(last, teacher, optimizer, scheduler, generator, device, curve, temperature))
    return TeacherRun(teacher, last - done, done, curve, stopped, generator)


def _capture(
    epoch: int,
    teacher: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    device: torch.device,
    curve: list[Point] | None,
    temperature: float,
) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "model": teacher.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "curve": curve,
        "temperature": temperature,  # of the curve's entropies
    }


def _restore(
    state: dict[str, Any],
    teacher: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    device: torch.device,
) -> None:
    teacher.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    if device.type == "cuda" and state["cuda_rng"] is not None:
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)

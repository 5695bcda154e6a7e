"""A teacher's training path: resume from the longest stored prefix, train the rest, watch each epoch.

Everything that makes two runs of a path identical is carried in a checkpoint: weights, optimizer
state, schedule state, the batch-order generator and torch's global RNG (initial weights of the
student, dropout). A run resumed from epoch k therefore continues exactly as a run from scratch
would after k epochs (``tests/core/test_teacher_paths.py`` checks the metrics are equal). A schedule that
reads the total number of epochs (cosine) makes every run its own path: such runs never share.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sweetspot.config import NetConfig
from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.metrics import accuracy, normalized_entropy
from sweetspot.core.models import build_model
from sweetspot.core.splits import Splits
from sweetspot.core.stacking import RngState, Stacked, get_rng, set_rng, stackable
from sweetspot.core.training import Generators, Loop, make_optimizer, make_scheduler, predict_logits, train_classifier

log = logging.getLogger("sweetspot.core.teacher_paths")

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
    return run_teacher(net, splits, batch_size, epochs, lr, _seeded(seed), **kwargs)


def _seeded(seed: int) -> torch.Generator:
    """Seed torch's global RNG (initial weights, dropout) and return the batch-order generator."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


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
    path = _open(net, splits, epochs, lr, generator, store, key, watch, temperature)
    if path.replayed is not None:
        return path.replayed
    return _train([path], net, splits, batch_size, epochs, lr, store, temperature, stacked=False)[0]


def seeded_runs(
    net: NetConfig,
    splits: Splits,
    batch_size: int,
    epochs: int,
    lr: float,
    seeds: Sequence[int],
    *,
    store: CheckpointStore | None = None,
    keys: Sequence[str | None] | None = None,
    watches: Sequence[Watch | None] | None = None,
    temperature: float = 1.0,
    stack: bool | None = None,
) -> list[TeacherRun]:
    """``seeded_run`` for each seed, each on its own path (``keys[i]``, ``watches[i]``).

    ``stack``: train the seeds as one stacked model (``stacking.Stacked``: one optimizer step, one
    backward pass, batched matrix products for a dense network); seeds resumed from different epochs
    train in separate stacks, and when one seed's watch stops, every seed of its stack stops at that
    epoch (a trial of several seeds stops when one of them does). Default (None): stacked on CUDA,
    one after another on a CPU, where stacking measured no faster than one seed after another
    (``benchmarks/teacher_seeds.py``; docs/performance.md). A network that cannot be stacked (batch norm)
    trains one seed after another, which the log says. Either way each seed's teacher is the one
    ``seeded_run`` trains for it (stacked: to float tolerance)."""
    keys = list(keys) if keys is not None else [None] * len(seeds)
    watches = list(watches) if watches is not None else [None] * len(seeds)
    stack = splits.x_train.device.type == "cuda" if stack is None else stack
    if len(seeds) == 1 or not stack or not stackable(build_model(net, splits.input_shape, splits.n_classes)):
        if len(seeds) > 1 and stack:
            log.info("teacher %s cannot be stacked (it has buffers): training its %d seeds one after another",
                     net.arch, len(seeds))
        return [seeded_run(net, splits, batch_size, epochs, lr, seed, store=store, key=key, watch=watch,
                           temperature=temperature) for seed, key, watch in zip(seeds, keys, watches)]
    paths = []
    for seed, key, watch in zip(seeds, keys, watches):
        paths.append(_open(net, splits, epochs, lr, _seeded(seed), store, key, watch, temperature))
    runs: dict[int, TeacherRun] = {i: p.replayed for i, p in enumerate(paths) if p.replayed is not None}
    if runs:  # a stored prefix already stops one seed: so is the trial; the others stay where they were
        return [runs.get(i) or TeacherRun(p.teacher, 0, p.done, p.curve, None, p.generator)
                for i, p in enumerate(paths)]
    for done in sorted({p.done for p in paths}):
        group = [i for i, p in enumerate(paths) if p.done == done]
        trained = _train([paths[i] for i in group], net, splits, batch_size, epochs, lr, store, temperature,
                         stacked=True)
        runs.update(zip(group, trained))
    return [runs[i] for i in range(len(paths))]


@dataclass
class _Path:
    """One seed's run where it starts: its network, optimizer, schedule, batch-order generator and
    dropout RNG state, restored from its path's longest stored prefix when there is one."""

    teacher: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    rng: RngState  # torch's global RNG state once built or restored: the dropout stream
    done: int  # epochs restored
    curve: list[Point] | None
    key: str | None  # None: the path is not shared (no store, or a schedule that reads the total epochs)
    watch: Watch | None
    replayed: TeacherRun | None = None  # set when the stored epochs already stop it


def _open(
    net: NetConfig, splits: Splits, epochs: int, lr: float, generator: torch.Generator,
    store: CheckpointStore | None, key: str | None, watch: Watch | None, temperature: float,
) -> _Path:
    device = splits.x_train.device
    teacher = build_model(net, splits.input_shape, splits.n_classes).to(device)
    optimizer = make_optimizer(net.optimizer, teacher, lr)
    scheduler = make_scheduler(net.schedule, optimizer, epochs, net.lr_decay)
    sharing = store is not None and key is not None and shares_path(net)
    path = _Path(teacher, optimizer, scheduler, generator, get_rng(device), 0, [] if watch is not None else None,
                 key if sharing else None, watch)
    if not sharing:
        return path
    assert store is not None and key is not None

    # a watched run needs the stored epochs' curve, measured at its own T
    def measured_here(s: dict[str, Any]) -> bool:
        return watch is None or (s["curve"] is not None and s["temperature"] == temperature)

    state = store.load(key, epochs, device, accept=measured_here)
    if state is None:
        return path
    _restore(state, teacher, optimizer, scheduler, generator, device)
    path.rng, path.done = get_rng(device), state["epoch"]
    if watch is not None:
        for point in state["curve"]:  # the stored epochs pass the same rule as trained ones
            reason = watch(point)
            if reason is not None:
                stored = state["curve"][: int(point["epoch"])]
                path.replayed = TeacherRun(teacher, 0, int(point["epoch"]), stored, reason, generator)
                return path
        path.curve = list(state["curve"])
    return path


def _train(
    paths: list[_Path], net: NetConfig, splits: Splits, batch_size: int, epochs: int, lr: float,
    store: CheckpointStore | None, temperature: float, *, stacked: bool,
) -> list[TeacherRun]:
    """Train ``paths`` (all restored to the same epoch) to ``epochs``: one network as it is, or
    several as one ``Stacked`` model, each copy with its own batches and dropout stream; save each
    shared path's checkpoints as a run of that path alone would."""
    device = splits.x_train.device
    done = paths[0].done
    if stacked:
        model: nn.Module = Stacked([p.teacher for p in paths], [p.rng for p in paths])
        optimizer = make_optimizer(net.optimizer, model, lr)
        if done:
            optimizer.load_state_dict(stack_optimizer_states([p.optimizer.state_dict() for p in paths]))
        scheduler = make_scheduler(net.schedule, optimizer, epochs, net.lr_decay)
        if scheduler is not None:
            scheduler.load_state_dict(paths[0].scheduler.state_dict())
        generator: Generators = [p.generator for p in paths]
    else:
        (path,) = paths
        model, optimizer, scheduler, generator = path.teacher, path.optimizer, path.scheduler, path.generator

    def capture(s: int, epoch: int) -> dict[str, Any]:
        """Copy ``s``'s checkpoint, in the form a run of its path alone writes."""
        p = paths[s]
        if not stacked:
            return _capture(epoch, model.state_dict(), optimizer.state_dict(), scheduler, p.generator,
                            get_rng(device), p.curve, temperature)
        return _capture(epoch, model.copy_of(s).state_dict(), slice_optimizer_state(optimizer.state_dict(), s,
                        len(paths)), scheduler, p.generator, model.rng[s], p.curve, temperature)

    stopped: list[str | None] = [None] * len(paths)
    watched = any(p.watch is not None for p in paths)
    every = store.every if store is not None and any(p.key is not None for p in paths) else 0

    def after_epoch(epoch: int) -> bool:
        if watched:
            logits = predict_logits(model, splits.x_val)
            for s, (p, copy_logits) in enumerate(zip(paths, logits if stacked else [logits])):
                if p.watch is not None and p.curve is not None:
                    point = {
                        "epoch": epoch,
                        "entropy": normalized_entropy(copy_logits, temperature),
                        "accuracy": accuracy(copy_logits, splits.y_val),
                    }
                    p.curve.append(point)
                    stopped[s] = p.watch(point)
        if every and epoch % every == 0 and epoch < epochs and not any(stopped):
            assert store is not None
            for s, p in enumerate(paths):
                if p.key is not None:
                    store.save(p.key, epoch, capture(s, epoch))
        return any(r is not None for r in stopped)

    last = done
    if epochs > done:
        loop = Loop(optimizer, batch_size, epochs - done, generator, scheduler, net.precision, first_epoch=done + 1,
                    after_epoch=after_epoch if watched or every else None)
        history = train_classifier(model, splits.x_train, splits.y_train, loop, net.augment)
        last = done + len(history)
    runs = []
    for s, p in enumerate(paths):
        if p.key is not None and last > done:
            assert store is not None
            store.save(p.key, last, capture(s, last))
        teacher = model.copy_of(s).eval() if stacked else p.teacher
        runs.append(TeacherRun(teacher, last - done, done, p.curve, stopped[s], p.generator))
    return runs


def stack_optimizer_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One optimizer state for a ``Stacked`` model from its copies' states (same parameter order):
    per-parameter tensors stacked along a first dimension; scalars (Adam's step) shared."""
    stacked: dict[int, dict[str, Any]] = {}
    for j, first in states[0]["state"].items():
        stacked[j] = {k: torch.stack([s["state"][j][k] for s in states]) if torch.is_tensor(v) and v.dim() else v
                      for k, v in first.items()}
    return {"state": stacked, "param_groups": copy.deepcopy(states[0]["param_groups"])}


def slice_optimizer_state(state: dict[str, Any], s: int, copies: int) -> dict[str, Any]:
    """Copy ``s``'s optimizer state out of a ``Stacked`` model's: the inverse of ``stack_optimizer_states``."""
    return {
        "state": {j: {k: v[s].clone() if torch.is_tensor(v) and v.dim() and len(v) == copies else v
                      for k, v in per.items()} for j, per in state["state"].items()},
        "param_groups": copy.deepcopy(state["param_groups"]),
    }


def _capture(
    epoch: int,
    model_state: dict[str, Any],
    optimizer_state: dict[str, Any],
    scheduler: Any,
    generator: torch.Generator,
    rng: RngState,
    curve: list[Point] | None,
    temperature: float,
) -> dict[str, Any]:
    """A path's checkpoint: one format, whether the teacher trained alone or as a stacked copy."""
    return {
        "epoch": epoch,
        "model": model_state,
        "optimizer": optimizer_state,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generator": generator.get_state(),
        "torch_rng": rng[0],
        "cuda_rng": rng[1],
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
    cuda_rng = state["cuda_rng"]
    set_rng((state["torch_rng"].cpu(), None if cuda_rng is None else cuda_rng.cpu()), device)

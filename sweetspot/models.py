"""Architecture registry: name -> builder(input_shape, n_classes, **options) -> nn.Module."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from torch import nn

from sweetspot.config import NetConfig, did_you_mean
from sweetspot.errors import ConfigError


def mlp(input_shape: tuple[int, ...], n_classes: int, width: int = 512, depth: int = 6, dropout: float = 0.0) -> nn.Module:
    """``depth`` hidden layers of ``width`` ReLU units (the paper's large teacher: 6 x 512)."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        fan_in = width
    layers.append(nn.Linear(fan_in, n_classes))
    return nn.Sequential(*layers)


def linear(input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """A single classification layer: the paper's "baseline" student."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_classes))


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "linear": linear}

# Range checks per option: name -> (test, what is allowed)
_OPTION_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "width": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "depth": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "dropout": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1, "a number in [0, 1)"),
}


def check_net(section: str, net: NetConfig) -> None:
    """Reject an unknown architecture or option with the one-line message the CLI prints."""
    if net.arch not in ARCHITECTURES:
        raise ConfigError(
            f"{section}.arch: unknown architecture {net.arch!r}{did_you_mean(net.arch, ARCHITECTURES)}"
            f" (available: {', '.join(ARCHITECTURES)})"
        )
    allowed = [p for p in inspect.signature(ARCHITECTURES[net.arch]).parameters if p not in ("input_shape", "n_classes")]
    for key, value in net.options.items():
        if key not in allowed:
            known = allowed + [f.name for f in NetConfig.__dataclass_fields__.values() if f.name != "options"]
            raise ConfigError(
                f"{section}: unknown key {key!r}{did_you_mean(key, known)} "
                f"(architecture {net.arch!r} takes: {', '.join(allowed) or 'no options'})"
            )
        test, what = _OPTION_RULES.get(key, (lambda v: True, ""))
        if not test(value):
            raise ConfigError(f"{section}.{key}: must be {what}, got {value!r}")


def build_model(net: NetConfig, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    return ARCHITECTURES[net.arch](input_shape, n_classes, **net.options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def linear_macs(model: nn.Module) -> tuple[int, int]:
    """Multiply-accumulates of one example's forward pass through the Linear layers: (all layers,
    the first layer). Training costs 2 FLOPs per MAC forward, 2 for weight gradients and 2 for input
    gradients, which the first layer does not compute."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    macs = [m.in_features * m.out_features for m in linears]
    return sum(macs), (macs[0] if macs else 0)


def training_flops_per_example(model: nn.Module) -> int:
    total, first = linear_macs(model)
    return 6 * total - 2 * first

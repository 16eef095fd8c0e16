"""MobileNetV3Space: the TuNAS search space (Bender et al., 2020) around MobileNetV3.

Per stage: a width multiplier and a depth; per block: the expand ratio, the kernel size
and (where allowed) a squeeze-excite layer. Written with ValueChoices inside basic units,
so one-shot algorithms share weights across widths, kernels and expand ratios. With the
right arguments it contains MobileNetV3-Large and -Small exactly (see the published
architectures at the end of this file).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

import supernet.nn as nn
from hub.proxylessnas import ConvBNAct, InvertedResidual, SqueezeExcite, make_divisible
from hub.searched import SearchedModelsMixin, register_searched_model
from supernet.nn import ValueChoice

__all__ = ["MobileNetV3Space", "load_torchvision_state_dict"]

ACTIVATIONS = {"hswish": nn.Hardswish, "swish": nn.SiLU, "relu": nn.ReLU}
SE_MODES = ("force", "optional", "none")


def _choice(values: Sequence[Any], label: str) -> Any:
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else ValueChoice(distinct, label=label)


class _SqueezeExciteLayer:
    """``(hidden, c_in) -> module``: a block's squeeze-excite, always (``force``) or as a choice (``optional``).
    An object, not a closure: the block records it as an argument, and the space must pickle."""

    def __init__(self, mode: str, label: str, se_from_exp: bool) -> None:
        self.mode, self.label, self.se_from_exp = mode, label, se_from_exp

    def __call__(self, hidden: Any, c_in: Any) -> nn.Module:
        squeeze = make_divisible((hidden if self.se_from_exp else c_in) // 4, 8)
        se = SqueezeExcite(hidden, squeeze)
        return se if self.mode == "force" else nn.LayerChoice({"se": se, "none": nn.Identity()}, label=self.label)


class MobileNetV3Space(nn.Module, SearchedModelsMixin):
    """TuNAS's largest space (arguments as in the reference API).

    ``base_widths`` (9): stem, stage 0 (one depthwise-separable block), stages 1-5, the last
    1x1 conv, the head. ``stride`` and ``activation`` have the same 9 entries;
    ``squeeze_excite`` has 6 (stages 0-5); ``depth_range`` 5 (stages 1-5) or one range.
    At 32x32 with ``num_labels=10`` the network is the same and ends at 1x1 resolution.
    """

    def __init__(self, num_labels: int = 1000,
                 base_widths: tuple[int, ...] = (16, 16, 32, 64, 128, 256, 512, 1024, 1280),
                 width_multipliers: tuple[float, ...] | float = (0.5, 0.625, 0.75, 1.0, 1.25, 1.5, 2.0),
                 expand_ratios: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0),
                 squeeze_excite: tuple[str, ...] = ("force", "force", "force", "force", "force", "force"),
                 depth_range: Sequence[tuple[int, int]] | tuple[int, int] = (1, 4),
                 stride: tuple[int, ...] = (2, 1, 2, 2, 2, 1, 2, 1, 1),
                 activation: tuple[str, ...] = ("hswish", "relu", "relu", "relu", "hswish", "hswish", "hswish",
                                                "hswish", "hswish"),
                 se_from_exp: bool = True, dropout_rate: float = 0.2, bn_eps: float = 1e-3,
                 bn_momentum: float = 0.1) -> None:
        super().__init__()
        for name, value, length in (("base_widths", base_widths, 9), ("stride", stride, 9),
                                    ("activation", activation, 9), ("squeeze_excite", squeeze_excite, 6)):
            if len(value) != length:
                raise ValueError(f"{name} needs {length} values, got {len(value)}: {tuple(value)}")
        unknown = [a for a in activation if a not in ACTIVATIONS]
        if unknown:
            raise ValueError(f"unknown activation {unknown[0]!r}; allowed: {list(ACTIVATIONS)}")
        unknown = [m for m in squeeze_excite if m not in SE_MODES]
        if unknown:
            raise ValueError(f"unknown squeeze_excite {unknown[0]!r}; allowed: {list(SE_MODES)}")
        multipliers = list(width_multipliers) if isinstance(width_multipliers, (list, tuple)) else [width_multipliers]
        if any(not isinstance(m, (int, float)) or m <= 0 for m in multipliers):
            raise ValueError(f"width multipliers must be positive, got {width_multipliers!r}")
        if any(not isinstance(r, (int, float)) or r <= 0 for r in expand_ratios):
            raise ValueError(f"expand ratios must be positive, got {expand_ratios!r}")
        ranges = [tuple(depth_range)] * 5 if isinstance(depth_range[0], int) else [tuple(r) for r in depth_range]
        if len(ranges) != 5:
            raise ValueError(f"depth_range needs one range or 5 (stages 1-5), got {len(ranges)}")

        norm = functools.partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)  # a closure would not pickle

        def act(i: int) -> Any:
            return ACTIVATIONS[activation[i]]

        widths = [_choice([make_divisible(w * m, 8) for m in multipliers], f"s{i - 1}_width" if 0 < i < 7 else
                          ("stem_width" if i == 0 else "last_width")) for i, w in enumerate(base_widths[:8])]
        widths.append(base_widths[8] if len(multipliers) == 1 else make_divisible(base_widths[8] * max(multipliers)))

        def se_layer(mode: str, label: str) -> _SqueezeExciteLayer | None:
            return None if mode == "none" else _SqueezeExciteLayer(mode, label, se_from_exp)

        self.stem = ConvBNAct(3, widths[0], 3, stride[0], norm_layer=norm, activation_layer=act(0))
        kernel0 = ValueChoice([3, 5, 7], label="s0_kernel")
        self.first = InvertedResidual(widths[0], widths[1], 1, kernel0, stride[1],
                                      se_layer(squeeze_excite[0], "s0_se"), norm, act(1))
        stages = []
        for s in range(1, 6):
            c_in, c_out = widths[s], widths[s + 1]

            def block(i: int, s: int = s, c_in: Any = c_in, c_out: Any = c_out) -> nn.Module:
                prefix = f"s{s}_i{i}"
                kernel = ValueChoice([3, 5, 7], label=f"{prefix}_kernel")
                return InvertedResidual(c_in if i == 0 else c_out, c_out, _choice(expand_ratios, f"{prefix}_exp"),
                                        kernel, stride[s + 1] if i == 0 else 1,
                                        se_layer(squeeze_excite[s], f"{prefix}_se"), norm, act(s + 1),
                                        expand_conv=len(set(expand_ratios)) > 1 or expand_ratios[0] != 1)

            low, high = ranges[s - 1]
            if low > high or low < 0:
                raise ValueError(f"depth_range of stage {s} must be (min, max) with 0 <= min <= max, got {(low, high)}")
            stages.append(nn.Repeat(block, (low, high) if low != high else low, label=f"s{s}_depth"))
        self.stages = nn.Sequential(*stages)
        self.last_conv = ConvBNAct(widths[6], widths[7], 1, norm_layer=norm, activation_layer=act(7))
        self.head = nn.Sequential(nn.Linear(widths[7], widths[8]), act(8)(), nn.Dropout(dropout_rate),
                                  nn.Linear(widths[8], num_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last_conv(self.stages(self.first(self.stem(x))))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# -- published architectures: MobileNetV3-Large and -Small (torchvision's networks) ------------------------
def _arch(depths: Sequence[int], blocks: Sequence[Sequence[tuple[float, int]]], kernel0: int) -> dict[str, Any]:
    arch: dict[str, Any] = {"s0_kernel": kernel0}
    for s, (depth, stage) in enumerate(zip(depths, blocks), start=1):
        arch[f"s{s}_depth"] = depth
        for i, (ratio, kernel) in enumerate(stage):
            arch[f"s{s}_i{i}_exp"] = ratio
            arch[f"s{s}_i{i}_kernel"] = kernel
    return arch


def _large() -> MobileNetV3Space:
    return MobileNetV3Space(1000, (16, 16, 24, 40, 80, 112, 160, 960, 1280), 1.0, (2.3, 2.5, 3.0, 4.0, 6.0),
                            ("none", "none", "force", "none", "force", "force"), (1, 4),
                            (2, 1, 2, 2, 2, 1, 2, 1, 1),
                            ("hswish", "relu", "relu", "relu", "hswish", "hswish", "hswish", "hswish", "hswish"),
                            bn_momentum=0.01)  # torchvision's BatchNorm2d(eps=0.001, momentum=0.01)


def _small() -> MobileNetV3Space:
    return MobileNetV3Space(1000, (16, 16, 24, 40, 48, 96, 96, 576, 1024), 1.0, (3.0, 11 / 3, 4.0, 4.5, 6.0),
                            ("force", "none", "force", "force", "force", "none"), [(1, 4)] * 4 + [(0, 4)],
                            (2, 2, 2, 2, 1, 2, 1, 1, 1),
                            ("hswish", "relu", "relu", "hswish", "hswish", "hswish", "hswish", "hswish", "hswish"),
                            bn_momentum=0.01)


register_searched_model(
    "mobilenetv3-large-100", MobileNetV3Space, _large,
    lambda: _arch([2, 3, 4, 2, 3], [[(4.0, 3), (3.0, 3)], [(3.0, 5)] * 3, [(6.0, 3), (2.5, 3), (2.3, 3), (2.3, 3)],
                                    [(6.0, 3)] * 2, [(6.0, 5)] * 3], 3),
    "MobileNetV3-Large 1.0 (as torchvision.models.mobilenet_v3_large)", "5,483,032 params (torchvision)")
register_searched_model(
    "mobilenetv3-small-100", MobileNetV3Space, _small,
    lambda: _arch([2, 3, 2, 3, 0], [[(4.5, 3), (11 / 3, 3)], [(4.0, 5), (6.0, 5), (6.0, 5)], [(3.0, 5)] * 2,
                                    [(6.0, 5)] * 3, []], 3),
    "MobileNetV3-Small 1.0 (as torchvision.models.mobilenet_v3_small)", "2,542,856 params (torchvision)")


def load_torchvision_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Load a state dict of ``torchvision.models.mobilenet_v3_large`` / ``_small`` into ``model``, the
    published network of the same name (``hub.load_searched_model("mobilenetv3-large-100")``), and return it.

    The two networks have the same layers in the same order; only the names differ: torchvision's
    ``features.0`` is our ``stem``, ``features.k.block`` (k = 1..n) our ``first.conv`` and then
    ``stages.s.i.conv`` stage by stage, ``features.n+1`` our ``last_conv`` and ``classifier`` our ``head``.
    """
    blocks = ["first.conv."] + [f"stages.{s}.{i}.conv." for s, stage in enumerate(model.stages)
                                for i in range(len(stage))]
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r"features\.(\d+)\.(block\.)?(.+)", key)
        k = int(match.group(1)) if match else -1
        if key.startswith("classifier."):
            renamed["head." + key[len("classifier."):]] = value
        elif k == 0 and not match.group(2):
            renamed["stem." + match.group(3)] = value
        elif 1 <= k <= len(blocks) and match.group(2):
            renamed[blocks[k - 1] + match.group(3)] = value
        elif k == len(blocks) + 1 and not match.group(2):
            renamed["last_conv." + match.group(3)] = value
        else:
            raise ValueError(f"torchvision state dict does not match this network ({len(blocks)} blocks): "
                             f"no place for key {key!r}")
    expected = model.state_dict()
    problems = [f"missing {k!r}" for k in expected if k not in renamed]
    problems += [f"{k!r}: {tuple(v.shape)} here, {tuple(renamed[k].shape)} in the state dict"
                 for k, v in expected.items() if k in renamed and v.shape != renamed[k].shape]
    if problems:
        raise ValueError(f"torchvision state dict does not match this network: {len(problems)} problems "
                         f"(e.g. {problems[0]})")
    model.load_state_dict(renamed)
    return model

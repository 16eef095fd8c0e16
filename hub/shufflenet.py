"""ShuffleNetSpace: the single-path one-shot space (Guo et al., 2020) of ShuffleNetV2 choice blocks.

Twenty choice blocks (4, 4, 8, 4 per stage), each one of four candidates: a ShuffleNetV2
unit with a 3x3, 5x5 or 7x7 depthwise convolution, or an Xception-like unit of three 3x3
depthwise convolutions. With ``channel_search`` every block also chooses its middle width
(0.2x to 1.6x of the default, shared by its four candidates).

A space built to be searched is the authors' supernet (megvii-model/SinglePathOneShot
src/Supernet/blocks.py and network.py): every BatchNorm, the stem's and the last
convolution's included, has no affine parameters. The fixed network (``supernet.freeze``,
the published ``spos``) has affine BatchNorm, as their evaluation network.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

import supernet.nn as nn
from hub.searched import SearchedModelsMixin, register_searched_model
from supernet.context import current_fixed_arch

__all__ = ["ShuffleNetSpace"]


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ShuffleNetV2's channel shuffle and split: even channels pass through, odd ones are processed."""
    b, c, h, w = x.shape
    x = x.reshape(b * c // 2, 2, h * w).permute(1, 0, 2).reshape(2, -1, c // 2, h, w)
    return x[0], x[1]


class ShuffleBlock(nn.Module):
    """A ShuffleNetV2 unit (``kind`` 3, 5, 7: one k x k depthwise conv; ``'x'``: three 3x3)."""

    def __init__(self, c_in: int, c_out: int, mid: Any, kind: int | str, stride: int, affine: bool = True) -> None:
        super().__init__()
        self.stride = stride
        branch_out = c_out - c_in

        def dw(c: Any, k: int, s: int) -> list[nn.Module]:
            return [nn.Conv2d(c, c, k, s, k // 2, groups=c, bias=False), nn.BatchNorm2d(c, affine=affine)]

        def pw(a: Any, b: Any) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b, affine=affine), nn.ReLU(inplace=True)]

        if kind == "x":
            layers = (dw(c_in, 3, stride) + pw(c_in, mid) + dw(mid, 3, 1) + pw(mid, mid) + dw(mid, 3, 1)
                      + pw(mid, branch_out))
        else:
            layers = pw(c_in, mid) + dw(mid, int(kind), stride) + pw(mid, branch_out)
        self.main = nn.Sequential(*layers)
        self.proj = nn.Sequential(*(dw(c_in, 3 if kind == "x" else int(kind), 2) + pw(c_in, c_in))) \
            if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            passthrough, x = _split(x)
        else:
            passthrough = self.proj(x)
        return torch.cat([passthrough, self.main(x)], 1)


class ShuffleNetSpace(nn.Module, SearchedModelsMixin):
    """The SPOS space (arguments as in the reference API); 4 ** 20 architectures without channel
    search. At 32x32 (``num_labels=10``) the same network ends at 1x1 resolution.

    ``affine``: whether every BatchNorm learns a scale and a shift. ``None`` (default): ``False``
    for a space built to be searched (the authors' supernet), ``True`` when it is built fixed
    (inside ``supernet.fixed_arch``, as ``supernet.freeze`` does). A weight-inheriting freeze
    of an affine-free supernet starts its BatchNorms at scale 1 and shift 0, which computes
    exactly what the supernet computes.
    """

    STAGE_REPEATS = (4, 4, 8, 4)
    STAGE_CHANNELS = (64, 160, 320, 640)

    def __init__(self, num_labels: int = 1000, channel_search: bool = False, affine: bool | None = None) -> None:
        super().__init__()
        if affine is None:
            affine = current_fixed_arch() is not None
        self.first_conv = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16, affine=affine),
                                        nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        c_in, index = 16, 0
        for repeats, c_out in zip(self.STAGE_REPEATS, self.STAGE_CHANNELS):
            for i in range(repeats):
                stride, block_in = (2, c_in) if i == 0 else (1, c_out // 2)
                base_mid = c_out // 2
                mid: Any = base_mid
                if channel_search:
                    options = list(dict.fromkeys(max(1, int(base_mid * r / 10)) for r in range(2, 17, 2)))
                    mid = nn.ValueChoice(options, label=f"channel_{index}")
                blocks.append(nn.LayerChoice(OrderedDict(
                    (f"choice_{kind}", ShuffleBlock(block_in, c_out, mid, kind, stride, affine))
                    for kind in (3, 5, 7, "x")), label=f"layer_{index}"))
                index += 1
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.conv_last = nn.Sequential(nn.Conv2d(c_in, 1024, 1, bias=False), nn.BatchNorm2d(1024, affine=affine),
                                       nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(1024, num_labels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_last(self.features(self.first_conv(x)))
        return self.classifier(self.dropout(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)))


# The architecture found by the SPOS paper's evolutionary search (block search, ImageNet), as
# released by its authors: the candidate of each of the 20 blocks (3/5/7 = kernel, x = Xception).
SPOS_BLOCKS = "7 5 3 5 7 3 7 3 7 3 7 x 3 3 3 3 x 7 x x"
register_searched_model("spos", ShuffleNetSpace, ShuffleNetSpace,
                        lambda: {f"layer_{i}": f"choice_{kind}" for i, kind in enumerate(SPOS_BLOCKS.split())},
                        "Single Path One-Shot, block search (ImageNet, 224x224)",
                        "3.5M params, 323M multiply-adds (authors' README); 3,558,464 params by the authors' code")

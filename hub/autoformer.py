"""AutoformerSpace: the vision-transformer space of AutoFormer (Chen et al., 2021).

Searchable: the embedding size (one for the whole network), the depth, and per layer the
number of heads and the MLP ratio. Written with ValueChoices inside basic units (patch
embedding, Linear, LayerNorm), so one-shot algorithms entangle the weights: attention
projects to ``heads x 64`` channels and works out the number of heads from the tensor
shapes, which makes the same code run in the space, a sliced supernet and a frozen net.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

import supernet.nn as nn
from hub.searched import SearchedModelsMixin, register_searched_model
from supernet.nn import ValueChoice
from supernet.oneshot import FAMILIES, ArchState, register_mixed_op
from supernet.oneshot.entangled import EntangledUnit, family_class

__all__ = ["AutoformerSpace"]

HEAD_DIM = 64
PRESETS = {
    "tiny": {"search_embed_dim": (192, 216, 240), "search_mlp_ratio": (3.0, 3.5, 4.0), "search_num_heads": (3, 4),
             "search_depth": (12, 13, 14)},
    "small": {"search_embed_dim": (320, 384, 448), "search_mlp_ratio": (3.0, 3.5, 4.0),
              "search_num_heads": (5, 6, 7), "search_depth": (12, 13, 14)},
    "base": {"search_embed_dim": (528, 576, 624), "search_mlp_ratio": (3.0, 3.5, 4.0),
             "search_num_heads": (8, 9, 10), "search_depth": (14, 15, 16)},
}


def _choice(values: tuple[Any, ...], label: str) -> Any:
    values = tuple(dict.fromkeys(values))
    return values[0] if len(values) == 1 else ValueChoice(list(values), label=label)


def _prepend_tokens(x: torch.Tensor, cls_token: torch.Tensor, pos_embed: torch.Tensor | None) -> torch.Tensor:
    width = cls_token.shape[-1]  # a supernet may pass a zero-padded wider or a narrower embedding
    x = x[..., :width] if x.shape[-1] >= width else torch.nn.functional.pad(x, (0, width - x.shape[-1]))
    x = torch.cat([cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    return x + pos_embed if pos_embed is not None else x


@nn.basic_unit
class Tokens(torch.nn.Module):
    """The class token and the absolute position embedding (one basic unit, so ``embed_dim`` may be a choice;
    a supernet shares one of each across widths, see ``EntangledTokens``)."""

    def __init__(self, embed_dim: int, num_patches: int, abs_pos: bool = True) -> None:
        super().__init__()
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim)) if abs_pos else None
        torch.nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.pos_embed is not None:
            torch.nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _prepend_tokens(x, self.cls_token, self.pos_embed)


class EntangledTokens(EntangledUnit, Tokens.base_class):
    """The supernet's class token and position embedding: one parameter each, of the largest embedding
    width, of which a subnet uses the leading ``embed_dim`` channels (as AutoFormer's supernet,
    microsoft/Cream AutoFormer/model/supernet_transformer.py: ``self.cls_token[..., :sample_embed_dim]``)."""

    base_class = Tokens.base_class
    searchable = ("embed_dim",)

    def sliced_state(self, v: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        state = {"cls_token": self.cls_token[..., : v["embed_dim"]]}
        if self.pos_embed is not None:
            state["pos_embed"] = self.pos_embed[..., : v["embed_dim"]]
        return state

    def forward_with(self, arch: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        state = self.sliced_state(self.values(arch))
        return _prepend_tokens(x, state["cls_token"], state.get("pos_embed"))


class _EntangledTokensOp:
    """Registry entry: the family's ``EntangledTokens`` (replacing one ``Tokens`` per width)."""

    @staticmethod
    def from_primitive(unit: Tokens, state: ArchState) -> torch.nn.Module:
        return family_class(EntangledTokens, state).from_primitive(unit, state)


for _family in FAMILIES:
    register_mixed_op(Tokens.base_class, _family, _EntangledTokensOp)


class RelativePosition2D(nn.Module):
    """Learned relative position embeddings on the patch grid (AutoFormer's 2-D form).

    One table per axis, indexed by the row and the column offset between two patches (clipped
    to ``±length``); row 0 of each table serves every pair that involves the class token.
    ``forward(n)`` gives the ``(n, n, head_dim)`` embeddings of ``n`` tokens (a class token
    and a square grid).
    """

    def __init__(self, head_dim: int, length: int) -> None:
        super().__init__()
        self.length = length
        self.table_v = torch.nn.Parameter(torch.zeros(2 * length + 2, head_dim))
        self.table_h = torch.nn.Parameter(torch.zeros(2 * length + 2, head_dim))
        torch.nn.init.trunc_normal_(self.table_v, std=0.02)
        torch.nn.init.trunc_normal_(self.table_h, std=0.02)

    def forward(self, n: int) -> torch.Tensor:
        side = math.isqrt(n - 1)
        patch = torch.arange(n - 1, device=self.table_v.device)

        def offsets(coordinate: torch.Tensor) -> torch.Tensor:
            relative = (coordinate[None, :] - coordinate[:, None]).clamp(-self.length, self.length)
            return torch.nn.functional.pad(relative + self.length + 1, (1, 0, 1, 0))  # 0: the class token

        return self.table_v[offsets(patch // side)] + self.table_h[offsets(patch % side)]


class Attention(nn.Module):
    """Multi-head self-attention with 64-dimensional heads, optionally with relative positions.

    The qkv projection is laid out head by head (each head's q, k, v together), so fewer heads
    use the leading heads of a wider projection, in a sliced supernet and when outputs of
    different head counts are mixed.
    """

    def __init__(self, embed_dim: Any, num_heads: Any, qkv_bias: bool, qk_scale: float | None, attn_drop: float,
                 proj_drop: float, rpe_length: int | None = None) -> None:
        super().__init__()
        self.qkv = nn.Linear(embed_dim, num_heads * HEAD_DIM * 3, bias=qkv_bias)
        self.proj = nn.Linear(num_heads * HEAD_DIM, embed_dim)
        self.scale = qk_scale or HEAD_DIM ** -0.5
        self.attn_drop, self.proj_drop = nn.Dropout(attn_drop), nn.Dropout(proj_drop)
        self.rpe_k = RelativePosition2D(HEAD_DIM, rpe_length) if rpe_length else None
        self.rpe_v = RelativePosition2D(HEAD_DIM, rpe_length) if rpe_length else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x)
        heads = qkv.shape[-1] // (3 * HEAD_DIM)
        q, k, v = qkv.reshape(b, n, heads, 3, HEAD_DIM).permute(3, 0, 2, 1, 4)
        logits = q @ k.transpose(-2, -1)
        if self.rpe_k is not None:
            logits = logits + torch.einsum("bhnd,nmd->bhnm", q, self.rpe_k(n))
        attn = self.attn_drop((logits * self.scale).softmax(-1))
        out = attn @ v
        if self.rpe_v is not None:
            out = out + torch.einsum("bhnm,nmd->bhnd", attn, self.rpe_v(n))
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, heads * HEAD_DIM)))


class DropPath(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.p)
        return x * mask / (1 - self.p)


class TransformerLayer(nn.Module):
    def __init__(self, embed_dim: Any, num_heads: Any, mlp_ratio: Any, qkv_bias: bool, qk_scale: float | None,
                 drop_rate: float, attn_drop_rate: float, drop_path: float, pre_norm: bool,
                 rpe_length: int | None = None) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.norm1 = nn.LayerNorm(embed_dim)
        self.attn = Attention(embed_dim, num_heads, qkv_bias, qk_scale, attn_drop_rate, drop_rate, rpe_length)
        self.norm2 = nn.LayerNorm(embed_dim)
        hidden = ValueChoice.to_int(embed_dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.GELU(), nn.Dropout(drop_rate),
                                 nn.Linear(hidden, embed_dim), nn.Dropout(drop_rate))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop_path(self.attn(x)))
        return self.norm2(x + self.drop_path(self.mlp(x)))


class AutoformerSpace(nn.Module, SearchedModelsMixin):
    """AutoFormer's space (arguments as in the reference API; the tiny preset by default).

    The tiny preset's MLP ratios include 3.0 (the paper's table lists 3.5 and 4), because the
    released AutoFormer-T uses 3.0 in five of its layers.

    ``AutoformerSpace.preset_arguments("tiny" | "small" | "base")`` gives a preset's search
    dimensions. Labels: ``embed_dim``, ``depth``, ``layer{i}/num_heads``, ``layer{i}/mlp_ratio``.
    At 32x32 use ``img_size=32, patch_size=4`` (64 patches). ``rpe=True`` adds AutoFormer's
    relative position encoding to every attention layer: learned tables for keys and values,
    per grid axis, for offsets up to the patch grid's side (14 at 224/16); they hold no choice,
    so every subnet shares them whole.
    """

    def __init__(self, search_embed_dim: tuple[int, ...] = (192, 216, 240),
                 search_mlp_ratio: tuple[float, ...] = (3.0, 3.5, 4.0), search_num_heads: tuple[int, ...] = (3, 4),
                 search_depth: tuple[int, ...] = (12, 13, 14),
                 img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, pre_norm: bool = True, global_pool: bool = False, abs_pos: bool = True,
                 qk_scale: float | None = None, rpe: bool = False) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size={img_size} must be a multiple of patch_size={patch_size}")
        for name, values in (("search_embed_dim", search_embed_dim), ("search_mlp_ratio", search_mlp_ratio),
                             ("search_num_heads", search_num_heads), ("search_depth", search_depth)):
            if not values or any(not isinstance(v, (int, float)) or v <= 0 for v in values):
                raise ValueError(f"{name} must be positive numbers, got {values!r}")
        embed = _choice(tuple(search_embed_dim), "embed_dim")
        num_patches = (img_size // patch_size) ** 2
        self.global_pool, self.pre_norm = global_pool, pre_norm
        self.patch_embed = nn.Conv2d(in_chans, embed, patch_size, patch_size)
        self.tokens = Tokens(embed, num_patches, abs_pos)
        self.pos_drop = nn.Dropout(drop_rate)
        max_depth = max(search_depth)

        def layer(i: int) -> nn.Module:
            return TransformerLayer(embed, _choice(tuple(search_num_heads), f"layer{i}/num_heads"),
                                    _choice(tuple(search_mlp_ratio), f"layer{i}/mlp_ratio"), qkv_bias, qk_scale,
                                    drop_rate, attn_drop_rate, drop_path_rate * i / max(1, max_depth - 1), pre_norm,
                                    img_size // patch_size if rpe else None)

        depth = _choice(tuple(search_depth), "depth")
        self.layers = nn.Repeat(layer, depth, label="depth" if isinstance(depth, int) else None)
        self.norm = nn.LayerNorm(embed) if pre_norm else nn.Identity()
        self.head = nn.Linear(embed, num_classes)

    @staticmethod
    def preset_arguments(name: str) -> dict[str, tuple]:
        """The search dimensions of the tiny, small or base preset."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {list(PRESETS)}")
        return dict(PRESETS[name])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = self.layers(self.pos_drop(self.tokens(x)))
        x = self.norm(x)
        return self.head(x[:, 1:].mean(1) if self.global_pool else x[:, 0])


# -- published architectures -------------------------------------------------------------------------
# The subnets released with the paper (AutoFormer-T/S/B, ImageNet 224x224, patch 16, global pooling,
# relative position encoding):
# embedding size and per-layer MLP ratios and head counts.
SEARCHED = {
    "tiny": (192, [3.5, 3.5, 3.0, 3.5, 3.0, 3.0, 4.0, 4.0, 3.5, 4.0, 3.5, 4.0, 3.5],
             [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3]),
    "small": (384, [3.0, 3.5, 3.0, 3.5, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.5, 4.0],
              [6, 6, 5, 7, 5, 5, 5, 6, 6, 7, 7, 6, 7]),
    "base": (576, [3.5, 3.5, 4.0, 3.5, 4.0, 3.5, 3.5, 3.0, 4.0, 4.0, 3.0, 4.0, 3.0, 3.5],
             [9, 9, 9, 9, 9, 10, 9, 9, 10, 9, 10, 9, 9, 10]),
}


# The paper's and the README's figures, and the count the authors' code (``get_sampled_params_numel`` of
# their supernet, set to the released subnet configuration) gives, which the networks here equal.
REPORTED = {
    "tiny": "5.7M params (paper), 5.8M (README); 5,867,944 by the authors' code",
    "small": "22.9M params (paper and README); 22,891,432 by the authors' code",
    "base": "54M params (paper), 53.7M (README); 53,691,688 by the authors' code",
}


def _searched_arch(preset: str) -> dict[str, Any]:
    embed_dim, mlp_ratios, heads = SEARCHED[preset]
    space = PRESETS[preset]
    arch: dict[str, Any] = {"embed_dim": embed_dim, "depth": len(mlp_ratios)}
    for i in range(max(space["search_depth"])):  # layers past the depth keep the first value; they are off
        arch[f"layer{i}/mlp_ratio"] = mlp_ratios[i] if i < len(mlp_ratios) else space["search_mlp_ratio"][0]
        arch[f"layer{i}/num_heads"] = heads[i] if i < len(heads) else space["search_num_heads"][0]
    return arch


for _preset in SEARCHED:
    register_searched_model(
        f"autoformer-{_preset}", AutoformerSpace,
        lambda preset=_preset: AutoformerSpace(**AutoformerSpace.preset_arguments(preset), global_pool=True, rpe=True),
        lambda preset=_preset: _searched_arch(preset),
        f"AutoFormer-{_preset[0].upper()} (ImageNet, 224x224, absolute and relative position embedding)",
        REPORTED[_preset])

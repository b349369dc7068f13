"""Building blocks of the SwinIR encoder: (shifted) window attention and residual Swin transformer groups.

Module and parameter names follow the official SwinIR code as LTE uses it (``residual_group.blocks.{j}``,
``norm1``, ``attn.{qkv,proj,relative_position_bias_table}``, ``norm2``, ``mlp.{fc1,fc2}``, ``conv``) so
that official checkpoints load by key.

Tokens are ``(B, H*W, C)`` in row-major pixel order; windows are ``(B*nW, ws*ws, C)``, batch-major, the
``nW = (H/ws)*(W/ws)`` windows of one image in row-major order.

The official blocks keep two buffers: ``attn.relative_position_index`` (fixed for a window size) and, in
shifted blocks, ``attn_mask`` sized for the training resolution (48x48). Here both are computed, never
stored (non-persistent): the index at construction, the mask at forward for the actual ``(H, W)`` (once
per forward, shared by all shifted blocks). Official state dicts that carry them still load strictly:
:func:`consume_official_buffers` checks and drops them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: value added to attention logits between tokens from different regions of a cyclically shifted window
MASK_VALUE = -100.0


def window_partition(x: Tensor, ws: int) -> Tensor:
    """``(B, H, W, C)`` → ``(B*nW, ws*ws, C)``; ``H``, ``W`` multiples of ``ws``."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B*nW, ws*ws, C)`` → ``(B, H, W, C)``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(ws: int) -> Tensor:
    """``(ws*ws, ws*ws)`` int64: row of the bias table for the pair (query i, key j) of one window.

    ``index[i, j] = (dy + ws - 1) * (2 ws - 1) + (dx + ws - 1)`` with ``(dy, dx) = pos_i - pos_j``.
    """
    pos = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    d = pos[:, :, None] - pos[:, None, :] + (ws - 1)  # (2, N, N), each in [0, 2 ws - 2]
    return d[0] * (2 * ws - 1) + d[1]


def shifted_window_mask(
    size: tuple[int, int], ws: int, shift: int, device: torch.device | None = None
) -> Tensor:
    """Attention mask of the cyclically shifted windows of an ``H x W`` grid: ``(nW, ws*ws, ws*ws)``.

    After ``roll(-shift)``, each axis has three regions (``[0, n-ws)``, ``[n-ws, n-shift)``, ``[n-shift, n)``);
    tokens of one window may attend to each other only within the same 2-D region (else ``MASK_VALUE``).
    """
    h, w = size
    if h % ws or w % ws or not 0 < shift < ws:
        raise ValueError(
            f"shifted_window_mask: size {size} must be multiples of {ws}, 0 < shift={shift} < {ws}"
        )

    def regions(n: int) -> Tensor:
        r = torch.arange(n, device=device)
        return (r >= n - ws).long() + (r >= n - shift).long()

    label = (3 * regions(h)[:, None] + regions(w)[None, :]).float()  # (H, W)
    label = window_partition(label[None, :, :, None], ws)[..., 0]  # (nW, N)
    diff = label[:, None, :] - label[:, :, None]
    return torch.zeros_like(diff).masked_fill_(diff != 0, MASK_VALUE)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p`` (training only)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"DropPath: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """``fc1 → GELU → fc2`` on tokens (dropout 0, as configured by LTE)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative position bias.

    Args:
        dim: token channels.
        ws: window side.
        num_heads: heads (``dim`` divisible by it); scale ``(dim/num_heads) ** -0.5``.
    """

    def __init__(self, dim: int, ws: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"WindowAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.ws, self.num_heads = ws, num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(ws), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> Tensor:
        """``(num_heads, N, N)`` bias added to the logits, ``N = ws*ws``."""
        n = self.ws * self.ws
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x`` (B*nW, N, C), ``mask`` (nW, N, N) or None → (B*nW, N, C)."""
        bnw, n, c = x.shape
        qkv = self.qkv(x).view(bnw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B*nW, heads, N, d)
        bias = self.position_bias().to(q.dtype)
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
        else:
            nw = mask.shape[0]
            logits_bias = bias.unsqueeze(0) + mask.to(q.dtype).unsqueeze(1)  # (nW, heads, N, N)
            # 4-D (B*nW, heads, N, N) as q: the fused CPU kernel takes it (a 5-D batch falls back to the
            # unfused math path: ~3x slower shifted blocks); a view for B = 1
            logits_bias = logits_bias.unsqueeze(0).expand(bnw // nw, -1, -1, -1, -1).reshape(bnw, *bias.shape)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=logits_bias)
        return self.proj(out.reshape(bnw, self.num_heads, n, -1).transpose(1, 2).reshape(bnw, n, c))


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted) window attention and MLP, each with a residual (and stochastic depth).

    Args:
        dim: token channels; num_heads: attention heads; ws: window side;
        shift: cyclic shift (0 or ``ws // 2``); mlp_ratio: MLP hidden / dim; drop_path: stochastic depth.
    """

    def __init__(
        self, dim: int, num_heads: int, ws: int, shift: int, mlp_ratio: float, drop_path: float
    ) -> None:
        super().__init__()
        self.ws, self.shift = ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor | None) -> Tensor:
        """``x`` (B, H*W, C); ``mask`` from :func:`shifted_window_mask` (used only when shifted)."""
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.ws), mask if self.shift else None)
        y = window_reverse(y, self.ws, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        consume_official_buffers(state_dict, prefix, self.ws)  # official checkpoints carry the buffers
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class BasicLayer(nn.Module):
    """``depth`` Swin blocks alternating shift 0 and ``ws // 2`` (official name: ``residual_group``)."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, ws: int, mlp_ratio: float, drop_path: Sequence[float]
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, ws, 0 if i % 2 == 0 else ws // 2, mlp_ratio, drop_path[i])
            for i in range(depth)
        )

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor | None) -> Tensor:
        for block in self.blocks:
            x = block(x, size, mask)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer Block: ``conv3x3(residual_group(x)) + x`` ('1conv' residual connection)."""

    def __init__(
        self, dim: int, depth: int, num_heads: int, ws: int, mlp_ratio: float, drop_path: Sequence[float]
    ) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, ws, mlp_ratio, drop_path)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, size: tuple[int, int], mask: Tensor | None) -> Tensor:
        """``x`` (B, H*W, C) → (B, H*W, C)."""
        y = tokens_to_image(self.residual_group(x, size, mask), size)
        return image_to_tokens(self.conv(y)) + x


def image_to_tokens(x: Tensor) -> Tensor:
    """``(B, C, H, W)`` → ``(B, H*W, C)``."""
    return x.flatten(2).transpose(1, 2)


def tokens_to_image(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, H*W, C)`` → ``(B, C, H, W)``."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], size[0], size[1])


def consume_official_buffers(state_dict: dict[str, Tensor], prefix: str, ws: int) -> None:
    """Check and remove the official ``attn.relative_position_index`` / ``attn_mask`` buffers of one block.

    ``prefix`` is the block's (``...blocks.{j}.``). The index must equal ours (it only depends on the
    window side); a mask must be ``(nW, ws*ws, ws*ws)`` (it is recomputed for every input size).
    """
    index = state_dict.pop(prefix + "attn.relative_position_index", None)
    if index is not None and not torch.equal(index.cpu().long(), relative_position_index(ws)):
        raise ValueError(f"{prefix}attn.relative_position_index does not match window size {ws}")
    mask = state_dict.pop(prefix + "attn_mask", None)
    if mask is not None and (mask.dim() != 3 or tuple(mask.shape[1:]) != (ws * ws, ws * ws)):
        raise ValueError(f"{prefix}attn_mask has shape {tuple(mask.shape)}, not (nW, {ws * ws}, {ws * ws})")

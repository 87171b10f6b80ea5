"""TinyDecoderLM: a compact decoder-only Transformer in plain PyTorch (no Lightning here).

Read top-down: positions, attention, feed-forward, block, then the whole model. Shapes use
B = batch, T = time (tokens), C = channels (dim), H = heads, D = head dim, V = vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Every size and switch of the network, declared once; invalid values raise one ValueError named by its CLI key."""

    vocab_size: int = 256  # the byte vocabulary; the datamodule's tokenizer sets the real one
    dim: int = 256
    depth: int = 6
    heads: int = 8
    context_len: int = 256
    dropout: float = 0.0
    pos_encoding: Literal["sinusoidal", "rotary"] = "sinusoidal"
    tie_embeddings: bool = False
    qk_norm: bool = False
    zero_init: bool = False
    logit_softcap: float = 0.0

    def __post_init__(self) -> None:
        sizes = (("model.dim", self.dim), ("model.depth", self.depth), ("model.heads", self.heads), ("data.context_len", self.context_len))
        for name, value in (("vocabulary size", self.vocab_size), *sizes):
            if value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value}.")
        if self.dim % self.heads:
            raise ValueError(f"model.dim ({self.dim}) must be divisible by model.heads ({self.heads}).")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}.")
        if self.pos_encoding not in ("sinusoidal", "rotary"):
            raise ValueError(f"model.pos_encoding must be 'sinusoidal' or 'rotary', got {self.pos_encoding!r}.")
        if self.pos_encoding == "sinusoidal" and self.dim % 2:
            raise ValueError(f"model.dim must be even for sinusoidal positions, got {self.dim}.")
        if self.pos_encoding == "rotary" and self.head_dim % 2:
            raise ValueError(f"model.dim / model.heads must be even for rotary positions, got {self.head_dim}.")
        if self.logit_softcap < 0:
            raise ValueError(f"model.logit_softcap must be >= 0 (0 turns it off), got {self.logit_softcap}.")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


def sinusoidal_positions(dim: int, context_len: int) -> torch.Tensor:
    """The fixed sin/cos position code of "Attention Is All You Need": a (T_max, C) table added to embeddings."""
    position = torch.arange(context_len).unsqueeze(1)  # (T_max, 1)
    freq = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))  # (C/2,)
    table = torch.zeros(context_len, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


def rotary_tables(head_dim: int, context_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE's cos and sin (T_max, D): position t turns channel pair (i, i + D/2) by t * 10000^(-2i/D)."""
    freq = torch.exp(torch.arange(0, head_dim, 2) * (-math.log(10000.0) / head_dim))  # (D/2,)
    angle = torch.arange(context_len).unsqueeze(1) * freq  # (T_max, D/2)
    angle = torch.cat([angle, angle], dim=1)  # (T_max, D): both halves of a pair turn by the same angle
    return angle.cos(), angle.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, T, D) by its tokens' rows cos, sin (T, D), so that q.k depends on relative position only."""
    # In x's precision: fp32 tables would promote bf16 queries and keys to fp32, doubling the memory
    # traffic of these elementwise ops (multiplies and concatenations were among the largest items of
    # the GPU recipe's step in a profile on an H200, bench/profile_step.py).
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)  # 2 x (B, H, T, D/2)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class KVCache:
    """Keys and values of every layer for the tokens seen so far, so each new token costs one position.

    The tensors never change shape or address and the fill level ``pos`` lives on the device, so
    a one-token step can be captured once in a CUDA graph and replayed for every token.
    """

    def __init__(self, depth: int, batch: int, heads: int, context_len: int, head_dim: int, like: torch.Tensor) -> None:
        shape = (batch, heads, context_len, head_dim)
        self.keys = [like.new_zeros(shape) for _ in range(depth)]
        self.values = [like.new_zeros(shape) for _ in range(depth)]
        self.pos = torch.zeros((), dtype=torch.long, device=like.device)  # next position to fill
        self.slots = torch.arange(context_len, device=like.device).view(1, context_len)  # (1, T_max)
        self.visible = self.slots <= self.pos  # (1, T_max): the filled slots a new token may attend to

    def reset(self) -> None:
        self.pos.zero_()

    def write_prompt(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Fill positions 0..T-1 (the cache must be empty) with k, v (B, H, T, D)."""
        self.keys[layer][:, :, : k.size(2)] = k
        self.values[layer][:, :, : v.size(2)] = v

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store one token's k, v (B, H, 1, D) at ``pos``; return all keys and values (B, H, T_max, D)."""
        self.keys[layer].index_copy_(2, self.pos.view(1), k)
        self.values[layer].index_copy_(2, self.pos.view(1), v)
        return self.keys[layer], self.values[layer]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.proj = nn.Linear(config.dim, config.dim, bias=False)
        self.dropout = config.dropout
        # QK-norm: queries and keys of unit RMS per head, so attention logits cannot grow without bound.
        # No gain: a float32 gain on bfloat16 activations would rule out the fused kernel.
        self.q_norm = nn.RMSNorm(config.head_dim, elementwise_affine=False) if config.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(config.head_dim, elementwise_affine=False) if config.qk_norm else nn.Identity()

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, D)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            # Before caching: a key is rotated once, by its own position, and stored that way.
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None and T == 1:
            # One new token sees every filled cache slot; the mask hides the empty ones.
            k, v = cache.append(layer, k, v)  # (B, H, T_max, D)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=cache.visible)
        else:
            if cache is not None:
                cache.write_prompt(layer, k, v)
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class GEGLU(nn.Module):
    """Feed-forward with a GELU-gated linear unit: W_out(gelu(x W_gate) * x W_up)."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        hidden = 4 * dim
        self.up = nn.Linear(dim, 2 * hidden, bias=False)  # value and gate in one matmul
        self.down = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)  # 2 x (B, T, 4C)
        return self.dropout(self.down(value * F.gelu(gate)))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.dim)
        self.attn = CausalSelfAttention(config)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.ffn_norm = nn.RMSNorm(config.dim)
        self.ffn = GEGLU(config.dim, config.dropout)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), rope, cache, layer))
        return x + self.ffn(self.ffn_norm(x))


class TinyDecoderLM(nn.Module):
    """Token embedding, sinusoidal or rotary positions, ``depth`` blocks, final RMSNorm and a linear head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        # Position tables are rebuilt from the config, so not saved in checkpoints.
        if config.pos_encoding == "sinusoidal":
            self.embed_scale = math.sqrt(config.dim)
            self.register_buffer("positions", sinusoidal_positions(config.dim, config.context_len), persistent=False)
        else:
            cos, sin = rotary_tables(config.head_dim, config.context_len)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.RMSNorm(config.dim)
        self.head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight  # one (V, C) matrix both reads tokens in and scores them out
        self.apply(self._init_weights)
        for block in self.blocks:
            for proj in (block.attn.proj, block.ffn.down):
                if config.zero_init:
                    # Every block starts as the identity (modded-nanogpt); its gradient is not zero once the head is not.
                    nn.init.zeros_(proj.weight)
                else:
                    # Residual projections start small so that deep stacks begin close to the identity (GPT-2).
                    nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.depth))
        if config.zero_init and not config.tie_embeddings:
            nn.init.zeros_(self.head.weight)  # uniform first predictions: the first loss is exactly log V

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Next-token logits (B, T, V) for token ids ``idx`` (B, T).

        With a cache: a prompt (T > 1) fills an empty cache; then one token (T = 1) at a time follows it.
        The caller keeps the total within ``context_len`` (see ``sampling.generate``).
        """
        T = idx.size(1)
        if T > self.config.context_len:
            raise ValueError(f"{T} tokens exceed the model's context of {self.config.context_len}.")
        if cache is not None and T == 1:
            torch.le(cache.slots, cache.pos, out=cache.visible)
        x = self.embed(idx)  # (B, T, C)
        rope = None
        if self.config.pos_encoding == "rotary":
            rope = self._rows(self.rope_cos, cache, T), self._rows(self.rope_sin, cache, T)  # 2 x (T, D)
        else:
            # Token embeddings (initialised small) are scaled by sqrt(C), as in Vaswani et al., so that the
            # unit-amplitude sinusoids do not drown them: without it a run learns far more slowly.
            x = x * self.embed_scale + self._rows(self.positions, cache, T)  # (B, T, C)
        x = self.embed_dropout(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, rope, cache, layer)
        if cache is not None:
            cache.pos += T
        logits = self.head(self.norm(x))  # (B, T, V)
        if self.config.logit_softcap:
            # A smooth bound |logit| < cap: the model cannot buy confidence with ever larger logits.
            cap = self.config.logit_softcap
            logits = cap * torch.tanh(logits / cap)
        return logits

    @staticmethod
    def _rows(table: torch.Tensor, cache: KVCache | None, T: int) -> torch.Tensor:
        """The rows (T, ...) of a position table (T_max, ...) for the T tokens of this call."""
        if cache is not None and T == 1:
            return table.index_select(0, cache.pos.view(1))  # the token's position, read on the device: no host sync
        return table[:T]

    def flops_per_token(self) -> float:
        """Training FLOPs per token at full context: 6 per weight (forward + backward) plus attention scores."""
        # The head's matrix counts, the embedding lookup does not; tied, they are one tensor, which
        # named_parameters lists once, as embed.weight.
        others = sum(p.numel() for name, p in self.named_parameters() if name not in ("embed.weight", "head.weight"))
        weights = self.head.weight.numel() + others
        c = self.config
        attention = 12 * c.depth * c.context_len * c.heads * c.head_dim  # QK^T and AV, fwd + bwd
        return 6 * weights + attention

    def new_cache(self, batch: int = 1) -> KVCache:
        """An empty KV cache for ``batch`` sequences, on this model's device and dtype."""
        like = self.head.weight
        c = self.config
        return KVCache(c.depth, batch, c.heads, c.context_len, c.head_dim, like)

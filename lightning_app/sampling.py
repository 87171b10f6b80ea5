"""Autoregressive sampling with temperature, top-k and nucleus (top-p), with or without a KV cache.

One implementation serves the after-fit sample and the ``generate`` subcommand: the options
(``SamplingOptions``), the token loop (``generate``) and the text it streams (``sample_text``).

Past the context length the window slides in jumps: once it is full, it restarts from its last
``context_len // 2`` tokens. Every cached key depends on the window it was computed in (its
absolute position with sinusoidal positions; the tokens it attended to, in deeper layers, with
rotary ones), so a window that moved one token per step would have to be recomputed in full at
every step; jumping by half a context keeps the cost at one position per token (plus one short
refill every ``context_len // 2`` tokens) while the model always sees at least half a context.
The cached and uncached paths follow the same windows, so they give the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch

from .cuda_graph import on_side_stream, record
from .model import KVCache, TinyDecoderLM
from .tokenizer import Tokenizer


@dataclass(kw_only=True)  # keyword-only: subclasses add required fields and change defaults
class SamplingOptions:
    """What to sample.

    Args:
        length: Tokens to generate after the prompt.
        prompt: Text to continue (a prompt longer than the context keeps its tail).
        temperature: Softmax temperature (0 is greedy).
        top_k: Keep only the k most likely tokens (0 = off).
        top_p: Keep the smallest set of tokens holding this much probability (1.0 = off).
    """

    length: int = 200
    prompt: str = "The"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    key_prefix: ClassVar[str] = ""  # how the command line spells the options, for error messages

    def __post_init__(self) -> None:
        p = self.key_prefix
        for name in ("length", "temperature", "top_k"):
            if getattr(self, name) < 0:
                raise ValueError(f"{p}{name} must be >= 0, got {getattr(self, name)}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"{p}top_p must be in (0, 1], got {self.top_p}.")
        if self.length and not self.prompt:
            raise ValueError(f"{p}prompt must hold at least one character.")


def next_token(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick one token id per row of ``logits`` (B, V); temperature 0 means greedy. Returns (B, 1)."""
    if temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass (the first always stays).
        drop_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def _one_token_step(model: TinyDecoderLM, cache: KVCache, batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function token (B, 1) -> next logits (B, V) that appends the token to ``cache``.

    On a GPU the step is captured once as a CUDA graph and replayed: a small model's step is a
    hundred tiny kernels whose launch cost, not their arithmetic, sets the speed.
    """
    if cache.pos.device.type != "cuda":
        return lambda token: model(token, cache)[:, -1]
    token_in = torch.zeros(batch, 1, dtype=torch.long, device=cache.pos.device)
    pos = cache.pos.clone()
    on_side_stream(model, token_in, cache)  # the warm-up
    graph, logits_out = record(lambda: model(token_in, cache)[:, -1])
    cache.pos.copy_(pos)  # undo the warm-up and capture steps; their slots are written again before use

    def step(token: torch.Tensor) -> torch.Tensor:
        token_in.copy_(token)
        graph.replay()
        return logits_out

    return step


@torch.inference_mode()
@torch.compiler.set_stance("force_eager")  # a compiled training model would recompile for every new length
def generate(
    model: TinyDecoderLM,
    prompt: torch.Tensor,
    length: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    on_token: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Extend ``prompt`` (B, T0) by ``length`` sampled tokens; returns (B, T0 + length).

    ``on_token`` receives each new token (B, 1) as soon as it is picked, for streaming.
    """
    if length == 0:
        return prompt  # nothing to pick, so the model need not run (and the prompt may be empty, as the options allow)
    if prompt.size(1) == 0:
        raise ValueError("The prompt must hold at least one token.")
    was_training = model.training
    model.eval()
    context = model.config.context_len
    keep = max(1, context // 2)
    ids = prompt
    start = max(0, ids.size(1) - context)  # a prompt longer than the context keeps its tail
    cache = model.new_cache(ids.size(0)) if use_cache else None
    try:  # the finally also runs when on_token stops the loop (Ctrl-C while streaming)
        logits = model(ids[:, start:], cache)[:, -1]  # (B, V)
        step = None  # the one-token step, built at its first use (the cache then has a free slot)
        for i in range(length):
            token = next_token(logits, temperature, top_k, top_p, generator)  # (B, 1)
            ids = torch.cat([ids, token], dim=1)
            if on_token is not None:
                on_token(token)
            if i == length - 1:
                break
            if ids.size(1) - start > context:  # the window is full: restart it from its last `keep` tokens
                start = ids.size(1) - keep
                if cache is not None:
                    cache.reset()
                logits = model(ids[:, start:], cache)[:, -1]
            elif cache is not None:
                step = step or _one_token_step(model, cache, ids.size(0))
                logits = step(token)
            else:
                logits = model(ids[:, start:])[:, -1]
    finally:
        model.train(was_training)
    return ids


# Control characters (C0, DEL, C1) other than newline and tab would move the cursor, recolour or clear a
# terminal; U+FFFD is what decoding shows for invalid or cut-off UTF-8. Neither is part of a sample.
_UNPRINTABLE = dict.fromkeys(c for c in (*range(0x20), *range(0x7F, 0xA0), 0xFFFD) if chr(c) not in "\n\t")


def printable(text: str) -> str:
    """``text`` without control characters (newline and tab stay) and without U+FFFD."""
    return text.translate(_UNPRINTABLE)


class TextStream:
    """Token ids in, printable text out as soon as it is complete.

    A character split across tokens (a byte vocabulary's multi-byte character, or a BPE token that
    ends inside one) decodes to U+FFFD until its last part arrives, so the tokens are held until the
    text no longer ends in U+FFFD. At most ``MAX_HELD`` tokens are held: a UTF-8 character spans at
    most 4 tokens, and bytes that never complete one must not delay the text forever.
    """

    MAX_HELD = 8

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.held: list[int] = []

    def push(self, ids: Iterable[int], end: bool = False) -> str:
        """The text that ``ids`` complete (maybe empty); at the ``end`` of a sample, all that is held."""
        self.held.extend(ids)
        text = self.tokenizer.decode(self.held)
        if not end and text.endswith("\ufffd") and len(self.held) < self.MAX_HELD:
            return ""
        self.held.clear()
        return printable(text)


def sample_text(
    model: TinyDecoderLM,
    tokenizer: Tokenizer,
    options: SamplingOptions,
    seed: int | None = None,
    on_text: Callable[[str], None] = lambda text: None,
) -> str:
    """The printable continuation of ``options.prompt`` (without the prompt), handed to ``on_text`` piece by piece.

    ``seed`` makes the sample repeatable; without one it draws from torch's global generator.
    """
    device = next(model.parameters()).device
    ids = torch.as_tensor(tokenizer.encode(options.prompt).astype("int64"), device=device).unsqueeze(0)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    stream, pieces = TextStream(tokenizer), []

    def emit(piece: str) -> None:
        if piece:
            pieces.append(piece)
            on_text(piece)

    def on_token(token: torch.Tensor) -> None:
        emit(stream.push(token[0].tolist()))

    o = options
    generate(model, ids, o.length, o.temperature, o.top_k, o.top_p, generator, on_token=on_token)
    emit(stream.push([], end=True))
    return "".join(pieces)

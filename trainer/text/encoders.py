"""Text encoders: token ids [N, L] (PAD = -1) -> pooled [N, E], per-token [N, L, E] and mask [N, L].

* `BuiltinTextEncoder`: word embeddings + learned positions + a few pre-norm transformer blocks,
  trained from scratch with the GAN (G and D each own one, so each engine's optimizer, ZeRO and
  G's EMA handle it like any other weight). Positions matter: "a red 7 on blue" and "a blue 7 on
  red" hold the same words.
* `HFTextEncoder`: a frozen Hugging Face CLIP or T5 text model loaded from a local folder
  (`text.encoder=hf:PATH`). It is deliberately *not* a registered submodule: its weights stay
  out of the optimizers, checkpoints and exports (the export records `hf:PATH` instead).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import NamedTuple, Optional

import torch
from torch import nn

from trainer.text.tokenizer import PAD, TokenizerError, WordTokenizer


class TextFeatures(NamedTuple):
    pooled: torch.Tensor  # [N, E]
    tokens: torch.Tensor  # [N, L, E]
    mask: torch.Tensor  # bool [N, L], True where a token is


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Plain softmax attention (q [N, h, Lq, d], k/v [N, h, Lk, d], mask bool [N, Lk]), written
    with matmuls so path-length regularization can differentiate it twice."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [N, h, Lq, Lk]
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return scores.softmax(dim=-1) @ v


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, length, dim = x.shape
    return x.view(n, length, heads, dim // heads).transpose(1, 2)  # [N, h, L, d]


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        y = attention(q, k, v, mask).transpose(1, 2).reshape(x.shape)
        x = x + self.proj(y)
        return x + self.mlp(self.norm2(x))


def unknown_prompt(n: int, device: torch.device) -> torch.Tensor:
    """What a text model sees when a caller gives no text (grids, probes): one unknown word."""
    return torch.zeros([n, 1], dtype=torch.int64, device=device)


class BuiltinTextEncoder(nn.Module):
    def __init__(self, *, num_tokens: int, context: int, dim: int, layers: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"text.dim={dim} must divide by text.heads={heads}")
        self.dim, self.context = dim, context
        self.embed = nn.Embedding(num_tokens, dim)
        self.pos = nn.Parameter(torch.randn(context, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> TextFeatures:
        assert tokens.ndim == 2 and tokens.shape[1] <= self.context, f"tokens must be [N, <= {self.context}]"
        mask = tokens != PAD  # [N, L]
        x = self.embed(tokens.clamp(min=0)) + self.pos[: tokens.shape[1]].to(self.embed.weight.dtype)
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)  # [N, L, E]
        weights = mask.to(x.dtype).unsqueeze(-1)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # mean over real tokens
        return TextFeatures(pooled, x, mask)


class HFTokenizer:
    """A Hugging Face tokenizer behind the WordTokenizer interface (ids padded with PAD)."""

    def __init__(self, path: str, context: int):
        from transformers import AutoTokenizer

        self.path, self.context = path, context
        self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.context = min(context, int(self.tok.model_max_length))

    def encode(self, text: str, *, warn: bool = False, source: str = "prompt") -> list[int]:
        if not text.strip():
            raise TokenizerError(f"{source} is empty ({text!r}); give a caption with at least one word")
        ids = self.tok(text)["input_ids"]
        if len(ids) > self.context:
            if warn:
                warnings.warn(f"{source}: {len(ids)} tokens, cut to the context length {self.context}", stacklevel=2)
            ids = ids[: self.context - 1] + ids[-1:]  # keep the end-of-text token CLIP pools at
        return ids + [PAD] * (self.context - len(ids))


def hf_path(encoder: str) -> str:
    path = encoder[3:]
    if not Path(path).is_dir():
        raise ValueError(
            f"text.encoder={encoder!r}: '{path}' is not a folder; save the model and its tokenizer "
            "there with save_pretrained() (offline: no model ids are downloaded)"
        )
    return path


class HFTextEncoder:
    """Frozen CLIP or T5 text model (not an nn.Module: see the module docstring)."""

    def __init__(self, encoder: str, context: int):
        from transformers import AutoConfig, CLIPTextModel, T5EncoderModel

        path = hf_path(encoder)
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        kind = config.model_type
        if kind in ("clip", "clip_text_model"):
            model = CLIPTextModel.from_pretrained(path, local_files_only=True)
            self.dim, self.pools = model.config.hidden_size, "eos"
            context = min(context, model.config.max_position_embeddings)
        elif kind in ("t5", "mt5", "umt5"):
            model = T5EncoderModel.from_pretrained(path, local_files_only=True)
            self.dim, self.pools = model.config.d_model, "mean"
        else:
            raise ValueError(f"text.encoder={encoder!r}: model type {kind!r} is neither CLIP nor T5")
        self.model = model.eval().requires_grad_(False)
        self.context = context

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor) -> TextFeatures:
        if next(self.model.parameters()).device != tokens.device:
            self.model.to(tokens.device)
        mask = tokens != PAD
        out = self.model(input_ids=tokens.clamp(min=0), attention_mask=mask.long())
        seq = out.last_hidden_state.float()  # [N, L, E]
        if self.pools == "eos":
            pooled = out.pooler_output.float()
        else:
            w = mask.float().unsqueeze(-1)
            pooled = (seq * w).sum(1) / w.sum(1).clamp(min=1)
        return TextFeatures(pooled, seq, mask)


def build_tokenizer(encoder: str, tokenizer: Optional[dict], context: int):
    """The tokenizer that matches an encoder: the builtin's JSON, or the HF folder's own."""
    if encoder == "builtin":
        return WordTokenizer.from_json(tokenizer or {}, source="builtin tokenizer")
    return HFTokenizer(hf_path(encoder), context)

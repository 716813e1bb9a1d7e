"""Text-conditional StyleGAN2 (the StyleGAN-T / GigaGAN pattern), built from the StyleGAN2 parts.

G: caption tokens -> text encoder -> pooled embedding joins z in the mapping network (as the
   class embedding does in StyleGAN2), and the synthesis features of every block up to
   `attn_res` cross-attend to the token embeddings (through SynthesisNetwork's `attend` hook).
D: StyleGAN2's D with its projection head fed the pooled embedding of D's own text encoder.

The text condition is one int64 tensor [N, L] of token ids padded with -1 (trainer.text), passed
where class-conditional families pass `c`, so D keeps the `D(img, c)` signature every loss,
augmentation and R1 uses. Called with c=None (sample grids, probes), both see the unknown word.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional

import torch
from torch import nn

from trainer.models.layers import MappingNetwork, normalize_2nd_moment
from trainer.models.stylegan2_discriminator import Discriminator
from trainer.models.stylegan2_generator import SynthesisNetwork, channels_at
from trainer.text.encoders import (
    BuiltinTextEncoder,
    HFTextEncoder,
    TextFeatures,
    attention,
    split_heads,
    unknown_prompt,
)
from trainer.text.tokenizer import WordTokenizer

TRUNCATION_LATENTS = 256  # latents averaged into each prompt's mean w for truncation


def truncation_latents(z_dim: int) -> torch.Tensor:
    """The fixed latents [TRUNCATION_LATENTS, z_dim] each prompt's mean w is averaged over."""
    return torch.randn([TRUNCATION_LATENTS, z_dim], generator=torch.Generator().manual_seed(0x7E57))


def text_encoder(encoder: str, tokenizer: Optional[dict], *, context: int, dim: int, layers: int, heads: int):
    if encoder == "builtin":
        vocab = WordTokenizer.from_json(tokenizer or {}, source="builtin tokenizer")
        return BuiltinTextEncoder(num_tokens=vocab.num_tokens, context=context, dim=dim, layers=layers, heads=heads)
    if encoder.startswith("hf:"):
        return HFTextEncoder(encoder, context)
    raise ValueError(f"text.encoder={encoder!r}; valid choices: builtin, hf:PATH")


class CrossAttention(nn.Module):
    """Image features [N, C, H, W] attend to token embeddings [N, L, E]; residual.

    A learned "null" key/value is always present, so a pixel can attend to nothing in particular
    (and an all-padding row never divides by zero)."""

    def __init__(self, channels: int, text_dim: int, heads: int):
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(text_dim, 2 * channels)
        self.null_kv = nn.Parameter(torch.randn(2, 1, channels) * 0.02)
        self.out = nn.Linear(channels, channels)
        self.gain = nn.Parameter(torch.full([1], 0.1))  # starts as a small change to the conv features

    def forward(self, x: torch.Tensor, text: TextFeatures) -> torch.Tensor:
        n, c, h, w = x.shape
        dtype = self.q.weight.dtype
        pixels = normalize_2nd_moment(x.to(dtype)).flatten(2).transpose(1, 2)  # [N, HW, C]
        k, v = self.kv(text.tokens.to(dtype)).chunk(2, dim=-1)  # [N, L, C] each
        k = torch.cat([self.null_kv[0].expand(n, 1, c), k], dim=1)
        v = torch.cat([self.null_kv[1].expand(n, 1, c), v], dim=1)
        mask = torch.cat([torch.ones_like(text.mask[:, :1]), text.mask], dim=1)  # [N, 1 + L]
        y = attention(
            split_heads(self.q(pixels), self.heads), split_heads(k, self.heads), split_heads(v, self.heads), mask
        )  # [N, h, HW, d]
        y = self.out(y.transpose(1, 2).reshape(n, h * w, c)).transpose(1, 2).reshape(n, c, h, w)
        return x + (y * self.gain).to(x.dtype)


def _tokenizer_bytes(tokenizer: Optional[dict]) -> torch.Tensor:
    """The tokenizer's JSON as a uint8 buffer: checkpoints (ema.safetensors, the engines' files)
    then carry the exact vocabulary the weights were trained with."""
    data = json.dumps(tokenizer or {}, sort_keys=True).encode()
    return torch.tensor(list(data), dtype=torch.uint8)


class TextGenerator(nn.Module):
    family = "text2img"

    def __init__(
        self,
        *,
        z_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        encoder: str = "builtin",
        tokenizer: Optional[dict] = None,
        context: int = 16,
        text_dim: int = 128,
        text_layers: int = 2,
        text_heads: int = 4,
        attn_res: int = 16,
        attn_heads: int = 2,
        mapping_layers: int = 8,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: Optional[float] = 256.0,
        mapping_lr_mult: float = 0.01,
    ):
        super().__init__()
        self.init_kwargs: dict[str, Any] = dict(
            z_dim=z_dim,
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            encoder=encoder,
            tokenizer=tokenizer,
            context=context,
            text_dim=text_dim,
            text_layers=text_layers,
            text_heads=text_heads,
            attn_res=attn_res,
            attn_heads=attn_heads,
            mapping_layers=mapping_layers,
            channel_base=channel_base,
            channel_max=channel_max,
            conv_clamp=conv_clamp,
            mapping_lr_mult=mapping_lr_mult,
        )
        self.z_dim, self.c_dim, self.w_dim = z_dim, 0, w_dim  # c is text, not a class vector
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.text = text_encoder(
            encoder, tokenizer, context=context, dim=text_dim, layers=text_layers, heads=text_heads
        )
        self.context = getattr(self.text, "context", context)
        self.register_buffer("tokenizer_json", _tokenizer_bytes(tokenizer))
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            conv_clamp=conv_clamp,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim,
            c_dim=self.text.dim,
            w_dim=w_dim,
            num_ws=self.num_ws,
            num_layers=mapping_layers,
            lr_multiplier=mapping_lr_mult,
        )
        self.attend = nn.ModuleDict(
            {
                str(block.resolution): CrossAttention(
                    channels_at(block.resolution, channel_base, channel_max), self.text.dim, attn_heads
                )
                for block in self.synthesis.blocks
                if block.resolution <= attn_res
            }
        )

    def encode(self, c: Optional[torch.Tensor], n: int, device: torch.device) -> TextFeatures:
        tokens = unknown_prompt(n, device) if c is None else c
        assert tokens.dtype == torch.int64 and tokens.shape[0] == n, f"text must be int64 token ids [{n}, L]"
        return self.text(tokens)

    def map(self, z: torch.Tensor, text: TextFeatures, *, update_w_avg: bool = False) -> torch.Tensor:
        return self.mapping(z, text.pooled, update_w_avg=update_w_avg)  # [N, num_ws, w_dim]

    def synthesize(
        self, ws: torch.Tensor, text: TextFeatures, *, noise_mode: str = "random", fused_modconv: Optional[bool] = None
    ) -> torch.Tensor:
        def attend(resolution: int, x: torch.Tensor) -> torch.Tensor:
            layer = self.attend[str(resolution)] if str(resolution) in self.attend else None
            return x if layer is None else layer(x, text)

        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, attend=attend)

    def prompt_mean_w(self, text: TextFeatures, latents: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Each row's mean w over fixed latents: the centre that truncation pulls towards, per prompt.
        Vectorised (no loop over rows), so sampling graphs can trace it with `latents` as a buffer."""
        if latents is None:
            latents = truncation_latents(self.z_dim).to(text.pooled.device)
        n, k = text.pooled.shape[0], latents.shape[0]
        z = latents.unsqueeze(0).expand(n, k, -1).reshape(n * k, -1)
        pooled = text.pooled.unsqueeze(1).expand(n, k, -1).reshape(n * k, -1)
        w = self.mapping(z, pooled)[:, :1]  # [N * K, 1, w_dim]
        return w.reshape(n, k, 1, -1).mean(dim=1)  # [N, 1, w_dim]

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        *,
        truncation_psi: float = 1.0,
        noise_mode: str = "random",
    ) -> torch.Tensor:
        """z [N, z_dim], c int64 token ids [N, L] (PAD -1) or None -> images [N, C, H, W]."""
        tokens = unknown_prompt(z.shape[0], z.device) if c is None else c
        text = self.encode(tokens, z.shape[0], z.device)
        ws = self.map(z, text)
        if truncation_psi != 1:
            # Each distinct prompt's mean w once (batches repeat prompts across seeds).
            unique, inverse = torch.unique(tokens, dim=0, return_inverse=True)
            centres = self.prompt_mean_w(self.encode(unique, unique.shape[0], z.device))  # [U, 1, w_dim]
            ws = centres[inverse].lerp(ws, truncation_psi)
        return self.synthesize(ws, text, noise_mode=noise_mode)


class TextDiscriminator(nn.Module):
    family = "text2img"

    def __init__(
        self,
        *,
        img_resolution: int,
        img_channels: int,
        encoder: str = "builtin",
        tokenizer: Optional[dict] = None,
        context: int = 16,
        text_dim: int = 128,
        text_layers: int = 2,
        text_heads: int = 4,
        channel_base: int = 32768,
        channel_max: int = 512,
        mbstd_group: int = 4,
        conv_clamp: Optional[float] = 256.0,
        mapping_layers: int = 8,
        match_critic: Optional[dict] = None,
    ):
        super().__init__()
        self.text = text_encoder(
            encoder, tokenizer, context=context, dim=text_dim, layers=text_layers, heads=text_heads
        )
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.net = Discriminator(
            c_dim=self.text.dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            mbstd_group=mbstd_group,
            conv_clamp=conv_clamp,
            mapping_layers=mapping_layers,
        )
        # text.match_critic_weight > 0 (trainer/text/match_critic.py): a second, smaller D with its own
        # text encoder, sizes from `match_critic` ({"channel_base", "channel_max"}). A submodule, so
        # D's engine optimises, checkpoints and freezes it with D; None (not in the state dict) when
        # off. Built last, so D's own initial weights are the same with it on or off.
        self.match_critic: Optional[TextDiscriminator] = None
        if match_critic:
            self.match_critic = TextDiscriminator(
                img_resolution=img_resolution,
                img_channels=img_channels,
                encoder=encoder,
                tokenizer=tokenizer,
                context=context,
                text_dim=text_dim,
                text_layers=text_layers,
                text_heads=text_heads,
                mbstd_group=mbstd_group,
                conv_clamp=conv_clamp,
                mapping_layers=mapping_layers,
                **match_critic,
            )

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        tokens = unknown_prompt(img.shape[0], img.device) if c is None else c
        return self.net(img, self.text(tokens).pooled)  # projection on the pooled embedding: [N, 1]

    def embed(self, img: torch.Tensor, c: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The two halves of D's projection term, for the contrastive loss (trainer/text/contrastive.py):
        the image features [N, cmap_dim] (the epilogue's output before the product) and the caption
        features [N, cmap_dim] (cmap: the mapping layers on the pooled text embedding). forward()
        scores <image, caption> / sqrt(cmap_dim) (tested), so the contrastive loss trains the very
        vectors the projection term multiplies; it must follow StyleGAN2's D.forward step for step."""
        tokens = unknown_prompt(img.shape[0], img.device) if c is None else c
        net, epilogue = self.net, self.net.epilogue
        x = None
        img = img.to(epilogue.out.weight.dtype)
        for block in net.blocks:
            x = block(x, img)
        image = epilogue.out(epilogue.fc(epilogue.conv(epilogue.mbstd(x)).flatten(1)))
        return image, self.embed_text(tokens)

    def embed_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """embed()'s caption half alone, [N, cmap_dim], with no image pass: the contrastive loss's
        extra wrong captions (trainer/text/swap_pool.py) need only this side."""
        return self.net.mapping(None, self.text(tokens).pooled)

    def score(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The projection score [N, 1] of embed()'s halves: what forward() returns, without a second pass."""
        return (image * text).sum(dim=1, keepdim=True) / math.sqrt(self.net.epilogue.cmap_dim)


def build(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.text.vocabulary import tokenizer_for

    m, d, t = cfg.model, cfg.data, cfg.text
    tokenizer = tokenizer_for(cfg) if t.encoder == "builtin" else None
    text = dict(
        encoder=t.encoder,
        tokenizer=tokenizer,
        context=t.context,
        text_dim=t.dim,
        text_layers=t.layers,
        text_heads=t.heads,
    )
    G = TextGenerator(
        z_dim=m.z_dim,
        w_dim=m.w_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        attn_res=t.attn_res,
        attn_heads=t.attn_heads,
        mapping_layers=m.mapping_layers,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
        conv_clamp=m.conv_clamp,
        mapping_lr_mult=m.mapping_lr_mult,
        **text,
    )
    D = TextDiscriminator(
        img_resolution=d.resolution,
        img_channels=d.channels,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
        mbstd_group=m.mbstd_group,
        conv_clamp=m.conv_clamp,
        mapping_layers=m.mapping_layers,
        match_critic=(
            dict(channel_base=t.match_critic_channel_base, channel_max=t.match_critic_channel_max)
            if t.match_critic_weight > 0
            else None
        ),
        **text,
    )
    return G, D

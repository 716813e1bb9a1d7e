"""Text-to-image step: StyleGAN2's phases (G main, lazy path length, D main, lazy R1, ADA or
DiffAugment through `AugmentedRecipe`) with the caption tokens as the condition, plus the
matching-aware term of GAN-INT-CLS: real images paired with another sample's caption count as
fakes (`text.mismatch_weight`), so D must check the caption and not only the image; and,
with `text.contrastive_weight`, the contrastive image-caption matching loss of
trainer/text/contrastive.py on D's projection features: D on the real batch, G on its fakes
(`text.contrastive_negatives=word_swap` adds each image's hardest one-word swaps of its caption,
trainer/text/swap_pool.py, to its row); and, with `text.match_critic_weight`, the separate
caption-matching critic of trainer/text/match_critic.py (D's submodule `match_critic`): trained in
D's phase on the real batch only, its score of G's fakes against their captions added to G's loss (with
`text.match_critic_augment`, every image it scores is randomly translated first). With
`text.match_critic_objective=relative` G's term is the margin softplus(C(fake, swap) - C(fake, caption))
over the critic's own one-word (digit-preferring) swap instead of the absolute score: an absolute
score can be raised for every caption at once, the margin only pays for digit-specific evidence.

Fakes are drawn for the real batch's own captions, so G trains on the caption distribution of
the data and never on a caption the data lacks (the withheld pairs of the colour-digits test).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainer import losses
from trainer.augment import build_augment
from trainer.losses import PhaseLosses
from trainer.phases import StepContext
from trainer.recipes.augmented import AugmentedRecipe
from trainer.text.captions import CaptionDecoder
from trainer.text.contrastive import beats_swaps, contrastive_loss
from trainer.text.encoders import build_tokenizer
from trainer.text.match_critic import critic_loss, generator_loss, relative_generator_loss, shift_images
from trainer.text.negatives import hardest, number_values, preferred_swap_captions, word_swap_options, wrong_captions
from trainer.text.swap_pool import hard_negatives

GRID_PROMPTS = (
    "a red 0 on a black background",
    "a white 3 on a blue background",
    "a yellow 5 on a green background",
    "a cyan 7 on a magenta background",
)
GRID_COLUMNS = 8
# text.mismatch=word_swap_hard: one-word swaps scored per image (captions of the colour digits
# differ from their most similar batch caption in at most 3 slots: digit, ink, background).
HARD_NEGATIVE_OPTIONS = 3


def mismatch_loss(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """D's loss for calling (real image, wrong caption) fake, in the form of its own loss kind."""
    if kind == "logistic":
        return F.softplus(logits).mean()
    if kind == "hinge":
        return F.relu(1 + logits).mean()
    if kind == "lsgan":
        return 0.5 * logits.float().square().mean()  # the fake target, 0
    return logits.float().mean()  # wgan_gp: lower scores for mismatches


def generate(
    G, z: torch.Tensor, tokens: torch.Tensor, *, style_mixing: float, update_w_avg: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """G's images for captions `tokens`, with StyleGAN2's style mixing between two latents."""
    text = G.encode(tokens, z.shape[0], z.device)
    ws = G.map(z, text, update_w_avg=update_w_avg)
    if style_mixing > 0:
        num_ws = ws.shape[1]
        cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, num_ws)
        cutoff = torch.where(torch.rand([], device=ws.device) < style_mixing, cutoff, torch.full_like(cutoff, num_ws))
        mixed = G.map(torch.randn_like(z), text)
        layer = torch.arange(num_ws, device=ws.device)[None, :, None]
        ws = torch.where(layer < cutoff, ws, mixed)
    return G.synthesize(ws, text), ws


class Text2ImgRecipe(AugmentedRecipe):
    def __init__(self, cfg, *, device: torch.device):
        self.cfg = cfg
        loss = cfg.loss
        self.g_reg_interval = loss.g_reg_interval if loss.pl_weight > 0 else 0
        self.d_reg_interval = loss.d_reg_interval if loss.r1_gamma > 0 else 0
        self.pl_mean = torch.zeros([], device=device)
        self.augment = build_augment(cfg, device=device)
        self.device = device
        self._tokenizer_json = None
        if cfg.text.encoder == "builtin":
            from trainer.text.vocabulary import tokenizer_for

            self._tokenizer_json = tokenizer_for(cfg)
        self.tokenizer = build_tokenizer(cfg.text.encoder, self._tokenizer_json, cfg.text.context)
        # The match critic's negatives prefer swapping a number word for another (the builtin
        # tokenizer's words; an hf: tokenizer's sub-words are not looked up: any one-word swap).
        index = getattr(self.tokenizer, "index", None)
        self._number_values = None if index is None else number_values(index, self.tokenizer.num_tokens).to(device)

    def sample_decoder(self):
        return CaptionDecoder(self.tokenizer, resolution=self.cfg.data.resolution, channels=self.cfg.data.channels)

    def train_phases(self, ctx: StepContext) -> None:
        loss, step, n = self.cfg.loss, ctx.step, ctx.batch_size
        real, tokens = ctx.batch.real, ctx.batch.extras["tokens"]
        mix, kind, D = loss.style_mixing, loss.kind, self.critic(ctx)

        contrastive, critic_weight = self.cfg.text.contrastive_weight, self.cfg.text.match_critic_weight

        def g_main() -> PhaseLosses:
            img, _ = generate(ctx.G, ctx.z(n), tokens, style_mixing=mix, update_w_avg=True)
            result = g_adversarial(img)
            if critic_weight:
                # The critic (frozen here with the rest of D) on the fakes, translated as its real images
                # are: one view, scored for every caption it is compared on.
                seen = self._critic_view(ctx, img, "G")
                terms = dict(result.terms)
                if self.cfg.text.match_critic_objective == "relative":
                    # D_main's call with the step as is: a pure function of (tokens, step), so G's swap
                    # is exactly the one the critic trains on this step. That does not matter: the critic
                    # never learns from fakes (frozen here, and D_main scores only real images), so G
                    # cannot steer what the critic learns about this swap; G is asked to beat the very
                    # distinction the critic is taught, and the step cycles both through every allowed
                    # swap. Another salt would serve as well; this one needs no RNG, so resume stays exact.
                    wrong = preferred_swap_captions(tokens, step, self._number_values)
                    matching, terms["match_critic_acc"] = relative_generator_loss(
                        ctx.D.match_critic, seen, tokens, wrong
                    )
                else:
                    matching = generator_loss(ctx.D.match_critic, seen, tokens)
                terms["match_critic"] = matching.detach()
                result = PhaseLosses(result.total + critic_weight * matching, terms)
            return result

        def g_adversarial(img: torch.Tensor) -> PhaseLosses:
            if not contrastive:
                logits = D(img, tokens)
                adv = losses.g_adversarial(kind, logits)
                return PhaseLosses(adv, {"adversarial": adv.detach(), "fake_score": logits.detach().mean()})
            # One D pass gives both the score and the features: G is pushed to draw images D
            # matches to their own caption rather than to the batch's other captions.
            image, text = self._embed(ctx, img, tokens)
            logits = ctx.D.score(image, text)
            adv = losses.g_adversarial(kind, logits)
            matching, terms = self._contrastive(ctx, image, text, tokens)
            terms = {"adversarial": adv.detach(), "fake_score": logits.detach().mean(), **terms}
            return PhaseLosses(adv + contrastive * matching, terms)

        ctx.run_phase("G_main", "G", g_main)

        g_int = self.g_reg_interval
        if g_int and step % g_int == 0:
            ctx.run_phase("G_reg", "G", lambda: self._path_length(ctx, tokens, g_int))

        def d_main() -> PhaseLosses:
            with torch.no_grad():
                fake, _ = generate(ctx.G, ctx.z(n), tokens, style_mixing=mix)
            result = losses.discriminator_scores(
                D, real, tokens, fake, tokens, kind=kind, gp_weight=loss.gp_weight, drift_weight=loss.drift_weight
            )
            weight = self.cfg.text.mismatch_weight
            if weight > 0 and n > 1:
                wrong = mismatch_loss(kind, D(real, self._wrong_captions(D, real, tokens, step)))
                result = PhaseLosses(result.total + weight * wrong, {**result.terms, "mismatch": wrong.detach()})
            if contrastive:
                # A pass of its own over the real batch (the adversarial one lives in
                # losses.discriminator_scores): D learns to pick each image's caption out of the batch.
                matching, terms = self._contrastive(ctx, *self._embed(ctx, real, tokens), tokens)
                result = PhaseLosses(result.total + contrastive * matching, {**result.terms, **terms})
            if critic_weight:
                # The probe's loss on the real batch only (never a fake): own caption vs a one-word swap,
                # a number word where the batch offers one. Unweighted: the weight scales G's use of it.
                wrong = preferred_swap_captions(tokens, step, self._number_values)
                seen = self._critic_view(ctx, real, "D")  # one shift per image, for both of its captions
                matching, accuracy = critic_loss(ctx.D.match_critic, seen, tokens, wrong)
                terms = {**result.terms, "match_critic": matching.detach(), "match_critic_acc": accuracy}
                result = PhaseLosses(result.total + matching, terms)
            return result

        ctx.run_phase("D_main", "D", self.observed(d_main))

        d_int = self.d_reg_interval
        if d_int and step % d_int == 0:

            def d_reg() -> PhaseLosses:
                result = losses.discriminator_r1(D, real, tokens, gamma=loss.r1_gamma, interval=d_int)
                if critic_weight:  # `* 0` keeps the critic's weights in the graph (ZeRO-2), unchanged
                    unused = sum(p.sum() for p in ctx.D.match_critic.parameters()) * 0
                    result = PhaseLosses(result.total + unused, result.terms)
                return result

            ctx.run_phase("D_reg", "D", d_reg)
        self.after_step(ctx)

    def _critic_view(self, ctx: StepContext, img: torch.Tensor, stream: str) -> torch.Tensor:
        """`img` as the match critic sees it: translated by up to `text.match_critic_augment` pixels."""
        shift = self.cfg.text.match_critic_augment
        return shift_images(img, shift, seed=self.cfg.run.seed, step=ctx.step, rank=ctx.rank, stream=stream)

    def _embed(self, ctx: StepContext, img: torch.Tensor, tokens: torch.Tensor):
        """D's (image, caption) features of `img`, augmented as every image D sees is (ADA, DiffAugment)."""
        return ctx.D.embed(img if self.augment is None else self.augment(img), tokens)

    def _contrastive(self, ctx: StepContext, image: torch.Tensor, text: torch.Tensor, tokens: torch.Tensor):
        """The contrastive term and its logged terms. With word_swap negatives the hard captions go
        through D's caption side only (D.embed_text), unaugmented like every caption, and D learns
        to push them away in its phase; in G's phase D is frozen, so they are constants there."""
        t = self.cfg.text
        if t.contrastive_negatives == "batch":
            matching = contrastive_loss(image, text, tokens, temperature=t.contrastive_temperature)
            return matching, {"contrastive": matching.detach()}
        hard = hard_negatives(image, tokens, ctx.D.embed_text, t.contrastive_hard_negatives)
        matching = contrastive_loss(image, text, tokens, temperature=t.contrastive_temperature, hard=hard)
        # Share of images whose caption beats all its swaps: for the colour digits, whether D reads the digit.
        return matching, {"contrastive": matching.detach(), "contrastive_swap_acc": beats_swaps(image, text, *hard)}

    def _wrong_captions(self, D, real: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        kind = self.cfg.text.mismatch
        if kind != "word_swap_hard":
            return wrong_captions(kind, tokens, step)
        # Score every one-word swap (one per differing slot) and keep, per image, the one D believes
        # most: no gradient, one extra D forward per option.
        options = word_swap_options(tokens, HARD_NEGATIVE_OPTIONS)  # [K, N, L]
        with torch.no_grad():
            scores = D(real.repeat(HARD_NEGATIVE_OPTIONS, 1, 1, 1), options.flatten(0, 1))
        return hardest(options, scores.float().view(HARD_NEGATIVE_OPTIONS, -1))

    def _path_length(self, ctx: StepContext, tokens: torch.Tensor, interval: int) -> PhaseLosses:
        loss = self.cfg.loss
        m = max(1, tokens.shape[0] // loss.pl_batch_shrink)
        img, ws = generate(ctx.G, ctx.z(m), tokens[:m], style_mixing=loss.style_mixing)
        pl_noise = torch.randn_like(img) / np.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img * pl_noise).sum(), ws, create_graph=True)
        lengths = grads.float().square().sum(dim=2).mean(dim=1).sqrt()
        self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean().detach(), loss.pl_decay))
        penalty = (lengths - self.pl_mean).square().mean()
        # `img * 0` keeps every G weight (the text encoder's too) in the graph for ZeRO-2.
        total = penalty * loss.pl_weight * interval + img.float().mean() * 0
        return PhaseLosses(total, {"path_length": penalty.detach(), "pl_mean": self.pl_mean.detach().clone()})

    def grid_images(self, G_ema):
        """Fixed prompts (a row each) at fixed latents, so grids from one run compare."""
        prompts = GRID_PROMPTS if self.cfg.text.encoder != "builtin" or self._known(GRID_PROMPTS) else ()
        if not prompts:
            return None  # the loop's default grid (unknown-word prompt)
        device = next(G_ema.parameters()).device
        ids = torch.tensor([self.tokenizer.encode(p) for p in prompts], device=device)
        tokens = ids.repeat_interleave(GRID_COLUMNS, dim=0)
        gen = torch.Generator().manual_seed(0)
        z = torch.randn([len(tokens), G_ema.z_dim], generator=gen).to(device)
        with torch.no_grad():
            images = G_ema(z, tokens, noise_mode="const")
        return images, len(prompts)

    def _known(self, prompts) -> bool:
        from trainer.text.tokenizer import words

        index = getattr(self.tokenizer, "index", {})
        return all(w in index for p in prompts for w in words(p))

    def export_metadata(self) -> dict:
        meta = {"text_encoder": self.cfg.text.encoder, "context": self.cfg.text.context}
        if self._tokenizer_json is not None:
            meta["tokenizer"] = self._tokenizer_json
        return meta

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        return {"pl_mean": self.pl_mean, **super().rank_tensors()}

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.pl_mean.copy_(tensors["pl_mean"])
        super().load_rank_tensors(tensors)

"""Validation of the text-to-image settings: section `text` and `eval.metrics=alignment`.

Called from trainer/config/checks.py with its `fail(key, message)`, which raises ConfigError
naming the key (as trainer/superres/settings.py does for section `sr`); kept here so the text
family's rules read in one place. No torch import: the config must load fast.
"""

from __future__ import annotations

from typing import Callable

Fail = Callable[[str, str], None]
# text.match_critic_objective: G's term on the critic's score (trainer/text/match_critic.py).
MATCH_CRITIC_OBJECTIVES = ("absolute", "relative")


def validate_text(cfg, fail: Fail) -> None:
    """Section text: the encoder name always, the family rules when model.family=text2img."""
    t = cfg.text
    if t.encoder != "builtin" and not (t.encoder.startswith("hf:") and len(t.encoder) > 3):
        fail(
            "text.encoder",
            f"got {t.encoder!r}; valid choices: builtin, hf:PATH (a local folder holding a "
            "CLIP or T5 text model and its tokenizer, saved with save_pretrained)",
        )
    for key in ("max_words", "context", "dim", "layers", "heads", "attn_heads"):
        if not getattr(t, key) > 0:
            fail(f"text.{key}", f"got {getattr(t, key)}; must be > 0")
    if t.dim % t.heads:
        fail("text.heads", f"got {t.heads}; text.dim={t.dim} must divide by it")
    if t.mismatch_weight < 0:
        fail("text.mismatch_weight", f"got {t.mismatch_weight}; must be >= 0")
    if not t.contrastive_weight >= 0:  # also refuses NaN
        fail("text.contrastive_weight", f"got {t.contrastive_weight}; must be >= 0 (0: off)")
    if not 0 < t.contrastive_temperature < float("inf"):
        fail("text.contrastive_temperature", f"got {t.contrastive_temperature}; must be > 0 (e.g. 0.1)")
    if t.contrastive_hard_negatives < 1:
        fail("text.contrastive_hard_negatives", f"got {t.contrastive_hard_negatives}; must be >= 1 (e.g. 3)")
    if t.contrastive_negatives != "batch" and not t.contrastive_weight > 0:
        # Refused rather than ignored: a config never claims a term that is not applied.
        fail(
            "text.contrastive_negatives",
            f"is {t.contrastive_negatives!r} but text.contrastive_weight=0 turns the contrastive loss off; "
            "set text.contrastive_weight (e.g. 1) or use text.contrastive_negatives=batch",
        )
    if not t.match_critic_weight >= 0:  # also refuses NaN
        fail("text.match_critic_weight", f"got {t.match_critic_weight}; must be >= 0 (0: off)")
    for key in ("match_critic_channel_base", "match_critic_channel_max"):
        if getattr(t, key) < 1:
            fail(f"text.{key}", f"got {getattr(t, key)}; must be >= 1 (the critic's channel count, e.g. 512 / 32)")
    if t.match_critic_augment < 0:
        fail("text.match_critic_augment", f"got {t.match_critic_augment}; must be >= 0 (pixels of translation, 0: off)")
    if t.match_critic_augment > 0 and not t.match_critic_weight > 0:
        # Refused rather than ignored: a config never claims a term that is not applied.
        fail(
            "text.match_critic_augment",
            f"is {t.match_critic_augment} but text.match_critic_weight=0 turns the critic off; "
            "set text.match_critic_weight (e.g. 1) or text.match_critic_augment=0",
        )
    if t.match_critic_objective not in MATCH_CRITIC_OBJECTIVES:
        fail(
            "text.match_critic_objective",
            f"got {t.match_critic_objective!r}; valid choices: {', '.join(MATCH_CRITIC_OBJECTIVES)}",
        )
    if t.match_critic_objective != "absolute" and not t.match_critic_weight > 0:
        # Refused rather than ignored: a config never claims a term that is not applied.
        fail(
            "text.match_critic_objective",
            f"is {t.match_critic_objective!r} but text.match_critic_weight=0 turns the critic off; "
            "set text.match_critic_weight (e.g. 1) or text.match_critic_objective=absolute",
        )
    if t.attn_res != 0 and not (4 <= t.attn_res <= cfg.data.resolution and t.attn_res & (t.attn_res - 1) == 0):
        fail(
            "text.attn_res",
            f"got {t.attn_res}; must be 0 (no cross-attention) or a power of two in "
            f"4..data.resolution={cfg.data.resolution}",
        )
    if cfg.model.family == "text2img" and cfg.c_dim:
        fail(
            "data.num_classes",
            f"is {cfg.data.num_classes}; model.family=text2img is conditioned on captions, "
            "not class labels: set data.num_classes=0",
        )


def validate_alignment(cfg, fail: Fail) -> None:
    """eval.metrics=alignment reads digit, ink and background back from 32x32 RGB samples of the
    colour-digit prompts (trainer/evaluation/text_alignment.py): a text2img model of that shape."""
    e = cfg.eval
    if cfg.model.family != "text2img":
        fail(
            "eval.metrics",
            f"holds alignment, which scores text-to-image prompts, but model.family={cfg.model.family} "
            "takes no text; remove alignment from eval.metrics (or use model.family=text2img)",
        )
    if e.alignment_samples < 1:
        fail("eval.alignment_samples", f"got {e.alignment_samples}; at least 1 sample per prompt")
    if e.every_kimg > 0 and (cfg.data.channels, cfg.data.resolution) != (3, 32):
        fail(
            "eval.metrics",
            f"holds alignment, which reads 3x32x32 colour digits (configs/text2img_digits.yaml), but the data is "
            f"{cfg.data.channels}x{cfg.data.resolution}x{cfg.data.resolution}; remove alignment from eval.metrics",
        )

"""Does a text2img D read the digit word? A probe on the embedded colour digits (docs/TEXT2IMG.md).

Two modes, both on real colour digits (`trainer.data.colour_digits`), never on G's samples:

* from scratch (default): D of CONFIG (with the overrides) trains alone for `--steps` steps of 32
  images on softplus(-D(image, its caption)) + softplus(D(image, the same caption with another
  digit)), and every `--every` steps prints the share of 256 held-out digits whose right caption it
  scores above the wrong-digit one (chance 50%). `--onehot` gives D the digit as a one-hot vector
  instead of the caption: the class-conditional case, for comparison.
* `--checkpoint RUN/checkpoints/step-N`: no training; D's weights from that training checkpoint
  score the first 120 held-out digits, drawn red on blue, with the ten captions "a red {digit} on a
  blue background", and the share whose right caption ranks first is printed (chance 10%).

    python -m trainer.evaluation.caption_probe configs/text2img_digits.yaml --steps 1500 \\
        model.channel_base=512 model.channel_max=32
    python -m trainer.evaluation.caption_probe runs/NAME/config.yaml --checkpoint runs/NAME/checkpoints/step-N
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data.colour_digits import captions, glyph_alphas, prompt, render, split, withheld

BATCH, EVAL_IMAGES, CHECKPOINT_IMAGES = 32, 256, 120
RED, BLUE = 2, 4


def _images(rendered: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(rendered)).permute(0, 3, 1, 2).float() / 127.5 - 1


class PairSampler:
    """Real colour digits with their caption and the same caption naming another digit."""

    def __init__(self, tokenizer, onehot_dim: int = 0, seed: int = 0):
        self.alphas, self.labels = glyph_alphas()
        self.tokenizer, self.onehot_dim, self.rng = tokenizer, onehot_dim, random.Random(seed)

    def __call__(self, indices: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng, images, right, wrong = self.rng, [], [], []
        for _ in range(n):
            i = rng.choice(indices)
            digit = int(self.labels[i])
            ink = rng.choice([k for k in range(8) if not withheld(digit, k)])
            background = rng.choice([k for k in range(8) if k != ink])
            form = 2 * rng.randrange(4) + rng.randrange(2)  # template, numeral or word
            other = rng.choice([k for k in range(10) if k != digit])
            images.append(render(self.alphas[i], ink, background))
            right.append((digit, captions(digit, ink, background)[form]))
            wrong.append((other, captions(other, ink, background)[form]))
        return _images(images), self._condition(right), self._condition(wrong)

    def _condition(self, pairs: list[tuple[int, str]]) -> torch.Tensor:
        if self.onehot_dim:
            return F.one_hot(torch.tensor([d for d, _ in pairs]), self.onehot_dim).float()
        return torch.tensor([self.tokenizer.encode(c) for _, c in pairs])


def train_from_scratch(cfg, *, steps: int, every: int, onehot: bool) -> list[tuple[int, float]]:
    from trainer.models import build_networks
    from trainer.text.encoders import build_tokenizer
    from trainer.text.vocabulary import tokenizer_for

    torch.manual_seed(0)
    _, D = build_networks(cfg)
    score = (lambda x, c: D.net(x, c)) if onehot else D  # noqa: E731 - one-hot skips D's text encoder
    sample = PairSampler(build_tokenizer("builtin", tokenizer_for(cfg), cfg.text.context), D.text.dim if onehot else 0)
    train, held = split()
    held_out = sample(held, EVAL_IMAGES)
    opt = torch.optim.Adam(D.parameters(), lr=cfg.optim.d_lr, betas=(cfg.optim.beta1, cfg.optim.beta2))
    curve, start = [], time.time()
    for step in range(1, steps + 1):
        x, right, wrong = sample(train, BATCH)
        loss = F.softplus(-score(x, right)).mean() + F.softplus(score(x, wrong)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            with torch.no_grad():
                x, right, wrong = held_out
                accuracy = float((score(x, right) > score(x, wrong)).float().mean())
            curve.append((step, accuracy))
            print(f"step {step}: held-out right caption above wrong digit {accuracy:.1%} ({time.time() - start:.0f} s)")
    return curve


@torch.no_grad()
def score_checkpoint(cfg, checkpoint: Path) -> float:
    from trainer.models import build_networks
    from trainer.text.encoders import build_tokenizer
    from trainer.text.vocabulary import tokenizer_for

    state = checkpoint / "D" / "state" / "mp_rank_00_model_states.pt"
    if not state.is_file():
        raise SystemExit(f"--checkpoint {checkpoint}: no D weights at {state}")
    _, D = build_networks(cfg)
    D.load_state_dict(torch.load(state, map_location="cpu", weights_only=True)["module"])
    D.eval()
    tokenizer = build_tokenizer("builtin", tokenizer_for(cfg), cfg.text.context)
    tokens = torch.tensor([tokenizer.encode(prompt(d, RED, BLUE)) for d in range(10)])
    alphas, labels = glyph_alphas()
    _, held = split()
    first = []
    for i in held[:CHECKPOINT_IMAGES]:
        x = _images([render(alphas[i], RED, BLUE)]).repeat(10, 1, 1, 1)
        first.append(int(D(x, tokens).flatten().argmax()) == int(labels[i]))
    return float(np.mean(first))


def main(argv=None) -> int:
    from trainer.config import load_config

    p = argparse.ArgumentParser(prog="python -m trainer.evaluation.caption_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("config", type=Path, help="a text2img config (a run's config.yaml for --checkpoint)")
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    p.add_argument("--steps", type=int, default=1500, help="D steps from scratch (default 1500)")
    p.add_argument("--every", type=int, default=100, help="score the held-out digits every N steps")
    p.add_argument("--onehot", action="store_true", help="condition D on the one-hot digit instead of the caption")
    p.add_argument("--checkpoint", type=Path, help="score this training checkpoint's D instead of training one")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_intermixed_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    if cfg.model.family != "text2img" or cfg.text.encoder != "builtin":
        p.error(f"{args.config}: needs model.family=text2img with text.encoder=builtin")
    if args.checkpoint:
        share = score_checkpoint(cfg, args.checkpoint)
        print(f"{args.checkpoint}: right digit's caption ranked first for {share:.1%} (chance 10%)")
    else:
        train_from_scratch(cfg, steps=args.steps, every=args.every, onehot=args.onehot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

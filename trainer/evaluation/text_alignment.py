"""Text-image alignment of a colour-digits export, with no download: the project's own attribute
reader reads digit, ink and background back from each sample.

* background: the median colour of the 4-pixel margin (pure background in the data), snapped to
  the nearest corner of the RGB cube;
* ink: the mean colour of the glyph pixels farthest from the background, snapped to the nearest
  corner other than the background;
* digit: the shipped digit network (trainer/evaluation/digit_features.py) on the ink's alpha
  (each pixel projected on the background->ink segment), cropped to the 24x24 glyph box and
  upscaled to 32x32 the way the network's training digits were.

`python -m trainer.evaluation.text_alignment EXPORT [--samples 10] [--check]` asks for every one of
the 560 (digit, ink, background) prompts, reports per-attribute accuracy and the share of samples
with all three right, split into seen and withheld (digit, ink) pairs; `--ceiling` reads
renders of the held-out real digits instead (the reader's own ceiling). During training,
`eval.metrics=alignment` runs the same sampler (`sample_prompts`) on G_ema in memory and logs the
scores as evaluation gauges (trainer/evaluation/periodic.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from trainer.data.colour_digits import (
    CANVAS,
    GLYPH,
    MARGIN,
    RGB,
    all_triples,
    glyph_alphas,
    prompt,
    render,
    split,
    withheld,
)

SEEN_BAR, WITHHELD_BAR = 0.85, 0.60  # share of samples with all three attributes right
ATTRIBUTES = ("digit", "ink", "background", "all")


def _snap(colours: np.ndarray, exclude: Optional[np.ndarray] = None) -> np.ndarray:
    """Nearest cube corner index for colours [N, 3] in 0..255 (optionally never `exclude` [N])."""
    d = ((colours[:, None, :] - RGB[None]) ** 2).sum(-1)  # [N, 8]
    if exclude is not None:
        d[np.arange(len(d)), exclude] = np.inf
    return d.argmin(axis=1)


def read_attributes(images: np.ndarray, net) -> dict[str, np.ndarray]:
    """uint8 [N, 32, 32, 3] -> {"digit", "ink", "background"} int arrays [N]."""
    from trainer.evaluation.digit_features import to_input

    x = images.astype(np.float32)
    assert x.shape[1:] == (CANVAS, CANVAS, 3), f"expects [N, {CANVAS}, {CANVAS}, 3] images"
    margin = np.ones([CANVAS, CANVAS], bool)
    margin[MARGIN : MARGIN + GLYPH, MARGIN : MARGIN + GLYPH] = False
    bg_rgb = np.median(x[:, margin], axis=1)  # [N, 3]
    background = _snap(bg_rgb)
    glyph = x[:, MARGIN : MARGIN + GLYPH, MARGIN : MARGIN + GLYPH].reshape(len(x), -1, 3)
    dist = np.linalg.norm(glyph - RGB[background][:, None], axis=-1)  # [N, P]
    far = dist >= 0.6 * dist.max(axis=1, keepdims=True)
    ink_rgb = (glyph * far[..., None]).sum(1) / np.maximum(far.sum(1, keepdims=True), 1)
    ink = _snap(ink_rgb, exclude=background)
    seg = RGB[ink] - RGB[background]  # [N, 3]
    alpha = ((glyph - RGB[background][:, None]) * seg[:, None]).sum(-1) / (seg**2).sum(-1, keepdims=True)
    alpha = np.clip(alpha, 0, 1).reshape(len(x), GLYPH, GLYPH)
    big = np.stack(
        [
            np.asarray(Image.fromarray(np.rint(a * 255).astype(np.uint8), mode="L").resize((32, 32), Image.BICUBIC))
            for a in alpha
        ]
    )
    with torch.no_grad():
        _, logits = net(to_input(torch.from_numpy(big).unsqueeze(1)))
    return {"digit": logits.argmax(1).numpy(), "ink": ink, "background": background}


def score(read: dict[str, np.ndarray], truth: np.ndarray) -> dict:
    """Per-attribute accuracy and all-three accuracy, overall and split by seen/withheld (digit, ink)."""
    right = {a: read[a] == truth[:, k] for k, a in enumerate(ATTRIBUTES[:3])}
    right["all"] = right["digit"] & right["ink"] & right["background"]
    held = np.array([withheld(int(d), int(i)) for d, i, _ in truth])
    report = {}
    for split_name, rows in (("seen", ~held), ("withheld", held), ("overall", np.ones_like(held))):
        report[split_name] = {a: float(right[a][rows].mean()) for a in ATTRIBUTES}
        report[split_name]["samples"] = int(rows.sum())
    return report


def generator_tokenizer(G: torch.nn.Module):
    """The tokenizer of an in-memory text2img G (G_ema in training), read from its constructor
    arguments exactly as an export's generator.json would give it."""
    from trainer.sampling.prompts import export_tokenizer

    return export_tokenizer({"family": getattr(G, "family", None), "init_kwargs": G.init_kwargs})


@torch.no_grad()
def sample_prompts(
    G: torch.nn.Module,
    tokenizer,
    samples: int,
    truncation: float = 1.0,
    device: Optional[torch.device] = None,
    batch: int = 280,
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [560 * samples, 32, 32, 3] of G for every prompt (seeds 0..samples-1) and
    their truth [560 * samples, 3]. G is used as given (the caller sets its eval mode); the
    latents come from their own seeded generators, so the global RNG is not drawn from."""
    from trainer.images import to_uint8
    from trainer.sampling.latents import latent
    from trainer.sampling.prompts import encode_prompts

    device = device if device is not None else next(G.parameters()).device
    triples = all_triples()
    tokens = encode_prompts(tokenizer, [prompt(*t) for t in triples], source="gate prompt")
    tokens = tokens.repeat_interleave(samples, dim=0)  # prompt-major, seeds 0..samples-1 each
    z = torch.cat([latent(s, G.z_dim) for s in range(samples)]).repeat(len(triples), 1)
    images = [
        to_uint8(
            G(
                z[i : i + batch].to(device),
                tokens[i : i + batch].to(device),
                truncation_psi=truncation,
                noise_mode="const",
            )
        )
        for i in range(0, len(z), batch)
    ]
    return np.concatenate(images), np.repeat(np.array(triples), samples, axis=0)


def sample_all(
    export: Path, samples: int, truncation: float, device: str = "cpu", batch: int = 280
) -> tuple[np.ndarray, np.ndarray]:
    """`sample_prompts` of the generator in an export (folder, .safetensors or run directory)."""
    from trainer.export import load_generator
    from trainer.sampling.prompts import export_tokenizer

    G, description = load_generator(export, device=device)
    return sample_prompts(
        G, export_tokenizer(description), samples, truncation, device=torch.device(device), batch=batch
    )


def record_fields(report: dict) -> dict[str, float]:
    """A `score` report as the flat keys of an eval.jsonl record: alignment_seen,
    alignment_withheld, alignment_overall (all three attributes right) and
    alignment_{seen,withheld,overall}_{digit,ink,background}."""
    fields = {}
    for split_name in ("seen", "withheld", "overall"):
        fields[f"alignment_{split_name}"] = report[split_name]["all"]
        for attribute in ATTRIBUTES[:3]:
            fields[f"alignment_{split_name}_{attribute}"] = report[split_name][attribute]
    return fields


def ceiling(samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Renders of held-out real digits for every triple: what a perfect generator would score."""
    alphas, labels = glyph_alphas()
    _, heldout = split()
    by_digit = {d: [i for i in heldout if labels[i] == d] for d in range(10)}
    images, truth = [], []
    for d, i, b in all_triples():
        for k in range(samples):
            images.append(render(alphas[by_digit[d][k % len(by_digit[d])]], i, b))
            truth.append((d, i, b))
    return np.stack(images), np.array(truth)


def check(report: dict) -> list[str]:
    failures = []
    if report["seen"]["all"] < SEEN_BAR:
        failures.append(
            f"seen pairs: {report['seen']['all']:.1%} of samples have all three attributes right (bar {SEEN_BAR:.0%})"
        )
    if report["withheld"]["all"] < WITHHELD_BAR:
        failures.append(f"withheld pairs: {report['withheld']['all']:.1%} (bar {WITHHELD_BAR:.0%})")
    return failures


def main(argv=None) -> int:
    from trainer.evaluation.digit_features import load as load_digit_net

    p = argparse.ArgumentParser(
        prog="python -m trainer.evaluation.text_alignment", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("export", type=Path, nargs="?", help="export folder, its .safetensors, or a run directory")
    p.add_argument("--samples", type=int, default=10, help="samples per prompt (seeds 0..N-1; default 10)")
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi toward each prompt's mean w")
    p.add_argument("--ceiling", action="store_true", help="score renders of held-out real digits instead")
    p.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 unless seen >= {SEEN_BAR * 100:.0f}%% and withheld >= "
        f"{WITHHELD_BAR * 100:.0f}%% of samples have all three attributes right",
    )
    p.add_argument("--out", type=Path, help="also write the report as JSON here")
    args = p.parse_args(argv)
    if args.export is None and not args.ceiling:
        p.error("give an EXPORT (or --ceiling)")
    images, truth = ceiling(args.samples) if args.ceiling else sample_all(args.export, args.samples, args.truncation)
    report = score(read_attributes(images, load_digit_net()), truth)
    report.update(
        source="ceiling (held-out real digits)" if args.ceiling else str(args.export),
        samples_per_prompt=args.samples,
        truncation=args.truncation,
        prompts=len(all_triples()),
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    failures = check(report) if args.check else []
    for failure in failures:
        print(f"text_alignment: below the bar: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

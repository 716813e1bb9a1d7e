"""Sampling a text-to-image export: prompts -> token ids -> images (`hiresgan sample --prompt/--prompts`).

The export's generator.json carries what turns a prompt into ids: the builtin tokenizer's JSON, or
the `hf:PATH` of a Hugging Face encoder whose own tokenizer is read from that folder. Unknown
words and over-long prompts are warned about by name; an empty prompt is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from trainer.text.encoders import build_tokenizer
from trainer.text.tokenizer import TokenizerError


class PromptError(ValueError):
    pass


def export_tokenizer(description: dict):
    """The tokenizer a text2img export was trained with."""
    kwargs = description.get("init_kwargs", {})
    if description.get("family") != "text2img":
        raise PromptError(
            f"--prompt/--prompts: this export is model.family={description.get('family')}, which "
            "takes no text; sample it with --seeds (and --class) instead"
        )
    return build_tokenizer(kwargs.get("encoder", "builtin"), kwargs.get("tokenizer"), kwargs.get("context", 16))


def encode_prompts(tokenizer, prompts: list[str], *, source: str = "--prompt") -> torch.Tensor:
    """int64 ids [len(prompts), L], PAD -1; warns about unknown words and cut prompts, by name."""
    rows = []
    for i, text in enumerate(prompts):
        where = source if len(prompts) == 1 else f"{source} line {i}"
        try:
            rows.append(tokenizer.encode(text, warn=True, source=where))
        except TokenizerError as exc:
            raise PromptError(str(exc)) from None
    return torch.tensor(rows, dtype=torch.int64)


def read_prompts(path: Path) -> list[str]:
    """One prompt a line; blank lines are errors (line i writes DIR/i/, so a line cannot vanish)."""
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"--prompts '{path}' does not exist; pass a text file with one prompt a line")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # a trailing newline is not a prompt
    if not lines:
        raise PromptError(f"--prompts '{path}' holds no prompt; write one prompt a line")
    empty = [str(i) for i, line in enumerate(lines) if not line.strip()]
    if empty:
        raise PromptError(f"--prompts '{path}': line(s) {', '.join(empty)} (from 0) are empty; every line is a prompt")
    return lines


@torch.no_grad()
def generate_for_prompt(
    G: torch.nn.Module, tokens: torch.Tensor, seeds: list[int], *, truncation: float = 1.0, batch: int = 64
) -> torch.Tensor:
    """Images [len(seeds), C, H, W] in [-1, 1] for one prompt's ids [L] (seed s: latent of seed s)."""
    from trainer.sampling.latents import latent

    device = next(G.parameters()).device
    out = []
    for start in range(0, len(seeds), batch):
        chunk = seeds[start : start + batch]
        z = torch.cat([latent(s, G.z_dim) for s in chunk]).to(device)
        ids = tokens.to(device).unsqueeze(0).expand(len(chunk), -1)
        out.append(G(z, ids, truncation_psi=truncation, noise_mode="const").cpu())
    return torch.cat(out)


def sample_prompts(
    export: Path,
    prompts: list[str],
    seeds: list[int],
    out_dir: Path,
    *,
    truncation: float = 1.0,
    device: str = "cpu",
    per_prompt_folders: bool = False,
    source: str = "--prompt",
) -> list[Path]:
    """One PNG per (prompt, seed): out_dir/seedNNNN.png, or out_dir/i/seedNNNN.png per prompt line i."""
    from trainer.export import load_generator
    from trainer.images import save_png, to_uint8

    G, description = load_generator(export, device=device)
    tokens = encode_prompts(export_tokenizer(description), prompts, source=source)
    paths: list[Path] = []
    for i, row in enumerate(tokens):
        folder = Path(out_dir) / str(i) if per_prompt_folders else Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        images = generate_for_prompt(G, row, seeds, truncation=truncation)
        for seed, pixels in zip(seeds, to_uint8(images)):
            path = folder / f"seed{seed:04d}.png"
            save_png(pixels, path)
            paths.append(path)
    return paths


def prompt_flags(prompt: Optional[str], prompts_file: Optional[Path]) -> tuple[list[str], bool, str]:
    """(prompts, one folder per prompt, flag name) from `--prompt` / `--prompts`."""
    if prompt is not None and prompts_file is not None:
        raise PromptError("--prompt and --prompts exclude each other; pass one")
    if prompts_file is not None:
        return read_prompts(prompts_file), True, "--prompts"
    return [prompt or ""], False, "--prompt"


def run_prompts(args) -> int:
    """`hiresgan sample EXPORT --prompt TEXT | --prompts FILE --seeds S --out DIR` (launch/cli.py)."""
    from trainer.sampling.latents import parse_seeds

    if args.prompt is None and args.prompts is None:
        raise PromptError(
            f"'{args.export}' is a text-to-image export: give --prompt \"a red seven on a blue "
            'background" or --prompts FILE (one prompt a line)'
        )
    prompts, per_line, flag = prompt_flags(args.prompt, args.prompts)
    paths = sample_prompts(
        args.export,
        prompts,
        parse_seeds(args.seeds),
        args.out,
        truncation=args.truncation,
        device=args.device,
        per_prompt_folders=per_line,
        source=flag,
    )
    where = f"{args.out}/0..{len(prompts) - 1}/" if per_line else str(args.out)
    print(f"hiresgan: wrote {len(paths)} image(s) to {where}")
    return 0

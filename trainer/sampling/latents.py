"""Generate images from an export: one PNG per seed, optionally for one class, with truncation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from trainer.export import load_generator
from trainer.images import save_png, to_uint8


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                seeds.extend(range(int(lo), int(hi) + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise ValueError(f"--seeds '{text}': expected numbers and ranges like 0-99 or 1,5,9") from None
    if not seeds:
        raise ValueError(f"--seeds '{text}' names no seed")
    return seeds


def latent(seed: int, z_dim: int) -> torch.Tensor:
    """The latent of a seed, the same on every machine (a CPU generator)."""
    return torch.randn([1, z_dim], generator=torch.Generator().manual_seed(seed))


def one_hot(class_index: Optional[int], c_dim: int, n: int, *, class_names=None) -> Optional[torch.Tensor]:
    if c_dim == 0:
        if class_index is not None:
            raise ValueError("--class was given but this generator is unconditional")
        return None
    if class_index is None:
        raise ValueError(
            f"this generator is conditional: pass --class K with K in 0..{c_dim - 1}"
            + (f" ({', '.join(class_names)})" if class_names else "")
        )
    if not 0 <= class_index < c_dim:
        raise ValueError(f"--class {class_index} is out of range: this generator has classes 0..{c_dim - 1}")
    c = torch.zeros([n, c_dim])
    c[:, class_index] = 1
    return c


@torch.no_grad()
def generate(
    G: torch.nn.Module,
    seeds: list[int],
    class_index: Optional[int],
    *,
    truncation: float = 1.0,
    noise_mode: str = "const",
    device: torch.device | str = "cpu",
    batch: int = 32,
) -> torch.Tensor:
    """Images in [-1, 1], [len(seeds), C, H, W]."""
    out = []
    for start in range(0, len(seeds), batch):
        chunk = seeds[start : start + batch]
        z = torch.cat([latent(s, G.z_dim) for s in chunk]).to(device)
        c = one_hot(class_index, G.c_dim, len(chunk))
        out.append(G(z, None if c is None else c.to(device), truncation_psi=truncation, noise_mode=noise_mode).cpu())
    return torch.cat(out)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@torch.no_grad()
def translate_folder(
    export: Path, folder: Path, out_dir: Path, *, direction: str = "ab", device: str = "cpu", batch: int = 32
) -> list[Path]:
    """Translate every image of `folder` with an image-to-image export (cyclegan): resized to the
    export's resolution, written under the same name (as PNG) to out_dir."""
    import numpy as np
    from PIL import Image

    G, description = load_generator(export, device)
    if description["family"] != "cyclegan":
        raise ValueError(
            f"--translate needs an image-to-image export (family cyclegan); '{export}' is "
            f"{description['family']}: use --seeds instead"
        )
    if direction not in ("ab", "ba"):
        raise ValueError(f"--direction {direction!r}: valid choices: ab, ba")
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--translate '{folder}' is not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--translate '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    res, mode = G.img_resolution, ("L" if G.img_channels == 1 else "RGB")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        arrays = []
        for f in chunk:
            with Image.open(f) as img:
                pixels = np.asarray(img.convert(mode).resize((res, res), Image.LANCZOS), dtype=np.uint8)
                arrays.append(torch.from_numpy(pixels.copy()))
        x = torch.stack(arrays).reshape(len(chunk), res, res, -1).permute(0, 3, 1, 2).float() / 127.5 - 1
        for f, pixels in zip(chunk, to_uint8(G(x.to(device), direction=direction).cpu())):
            path = out_dir / f"{f.stem}.png"
            save_png(pixels, path)
            paths.append(path)
    return paths


def sample_to_folder(
    export: Path,
    seeds: list[int],
    out_dir: Path,
    *,
    class_index: Optional[int] = None,
    truncation: float = 1.0,
    device: str = "cpu",
) -> list[Path]:
    G, description = load_generator(export, device)
    if description["family"] in ("cyclegan", "pix2pix"):
        raise ValueError(
            f"'{export}' translates images (family {description['family']}): pass --translate FOLDER instead of seeds"
        )
    if description["family"] == "inpaint":
        raise ValueError(
            f"'{export}' fills holes (family inpaint): pass --inpaint IMAGES --masks MASKS instead of seeds"
        )
    one_hot(class_index, G.c_dim, 1, class_names=description.get("class_names"))  # validate before work
    images = to_uint8(generate(G, seeds, class_index, truncation=truncation, device=device))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"-class{class_index}" if class_index is not None else ""
    paths = []
    for seed, pixels in zip(seeds, images):
        path = out_dir / f"seed{seed:04d}{suffix}.png"
        save_png(pixels, path)
        paths.append(path)
    return paths


# ------------------------------------------------------------------ grids, style mixing, video
@torch.no_grad()
def _ws(G: torch.nn.Module, seeds: list[int], class_index: Optional[int], truncation: float) -> torch.Tensor:
    z = torch.cat([latent(s, G.z_dim) for s in seeds])
    c = one_hot(class_index, G.c_dim, len(seeds))
    return G.mapping(z, c, truncation_psi=truncation)  # [N, num_ws, w_dim]


def class_grid(G: torch.nn.Module, seeds: list[int], *, truncation: float = 1.0) -> tuple[torch.Tensor, int]:
    """One row per class (conditional) or a single row: (images, rows)."""
    if not G.c_dim:
        return generate(G, seeds, None, truncation=truncation), 1
    return torch.cat([generate(G, seeds, k, truncation=truncation) for k in range(G.c_dim)]), G.c_dim


@torch.no_grad()
def style_mixing_grid(
    G: torch.nn.Module,
    row_seeds: list[int],
    col_seeds: list[int],
    *,
    class_index: Optional[int],
    cutoff: int,
    truncation: float = 1.0,
) -> torch.Tensor:
    """(1 + rows) x (1 + cols) images: the top row and left column are the seeds' own images; cell
    (r, c) takes the first `cutoff` style inputs (coarse: pose, shape) from column seed c and the
    rest (fine: texture, colour) from row seed r. The top-left cell is blank."""
    if not 0 <= cutoff <= G.num_ws:
        raise ValueError(
            f"--mix-cutoff {cutoff}: must be in 0..{G.num_ws} (this generator has {G.num_ws} style inputs)"
        )
    row_ws, col_ws = _ws(G, row_seeds, class_index, truncation), _ws(G, col_seeds, class_index, truncation)
    synth = lambda ws: G.synthesis(ws, noise_mode="const")  # noqa: E731
    row_img, col_img = synth(row_ws), synth(col_ws)
    cells = [torch.full_like(row_img[:1], -1), col_img]
    for r in range(len(row_seeds)):
        mixed = row_ws[r : r + 1].repeat(len(col_seeds), 1, 1)
        mixed[:, :cutoff] = col_ws[:, :cutoff]
        cells += [row_img[r : r + 1], synth(mixed)]
    return torch.cat(cells)


@torch.no_grad()
def interpolation_frames(
    G: torch.nn.Module, seeds: list[int], *, class_index: Optional[int], frames: int, truncation: float = 1.0
) -> torch.Tensor:
    """Linear interpolation in W between consecutive seeds (and back to the first): a loop."""
    if len(seeds) < 2 or frames < 1:
        raise ValueError("--video needs at least two seeds and --frames >= 1")
    ws = _ws(G, seeds + seeds[:1], class_index, truncation)
    t = torch.arange(frames, dtype=ws.dtype) / frames
    path = torch.cat([ws[i : i + 1].lerp(ws[i + 1 : i + 2], t[:, None, None]) for i in range(len(seeds))])
    return torch.cat([G.synthesis(chunk, noise_mode="const") for chunk in path.split(16)])


def save_animation(images: torch.Tensor, path: Path, *, fps: int = 24) -> Path:
    """GIF (Pillow, no extra dependency); MP4 would need an encoder we do not ship."""
    from PIL import Image

    if path.suffix.lower() != ".gif":
        raise ValueError(
            f"--video '{path}': only .gif is supported (MP4 needs ffmpeg, which hiresgan does not "
            "depend on); convert the GIF with ffmpeg if you need MP4"
        )
    pixels = to_uint8(images)
    mode = "L" if pixels.shape[3] == 1 else "RGB"
    frames = [Image.fromarray(p[:, :, 0] if mode == "L" else p, mode) for p in pixels]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.gif")
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    tmp.replace(path)
    return path


class LatentGrid:
    """The fixed latents of a run's sample grids: one row per class for conditional models with
    at most 16 classes, else four rows, of `COLUMNS` seeds each (seeds 0, 1, ...), so every grid
    of a run shows the same latents and grids of two runs compare."""

    COLUMNS = 8

    def __init__(self, *, z_dim: int, c_dim: int):
        self.rows = c_dim if 0 < c_dim <= 16 else 4
        n = self.rows * self.COLUMNS
        self.z = torch.cat([latent(seed, z_dim) for seed in range(n)])  # [rows * COLUMNS, z_dim]
        self.c = None
        if c_dim > 0:
            self.c = torch.nn.functional.one_hot(torch.arange(n) // self.COLUMNS % c_dim, c_dim).float()

    @torch.no_grad()
    def images(self, G: torch.nn.Module, device: torch.device) -> torch.Tensor:
        """G's images of the grid, a row of COLUMNS at a time (keeps memory flat)."""
        c = None if self.c is None else self.c.to(device)
        rows = []
        for i, z in zip(range(0, len(self.z), self.COLUMNS), self.z.split(self.COLUMNS)):
            rows.append(G(z.to(device), None if c is None else c[i : i + self.COLUMNS], noise_mode="const"))
        return torch.cat(rows)

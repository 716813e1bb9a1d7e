"""Helpers for the evaluation tests (importable by name: pyproject puts tests/evaluation on the path)."""

import torch


def tiny_generator(c_dim: int = 10, channels: int = 1, resolution: int = 32, seed: int = 0):
    from trainer.models.stylegan2_generator import Generator

    torch.manual_seed(seed)
    G = Generator(
        z_dim=16,
        c_dim=c_dim,
        w_dim=16,
        img_resolution=resolution,
        img_channels=channels,
        mapping_layers=2,
        channel_base=256,
        channel_max=16,
    )
    # Non-zero noise strengths and w_avg, so noise and truncation paths are really exercised.
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
        G.mapping.w_avg.normal_()
    return G.eval()


def make_checkpoint(run_dir, step: int, images_seen: int, seed: int = 0):
    """A checkpoint folder in the trainer's on-disk format (G_ema, state, manifest), without the
    DeepSpeed engine folders that export and evaluation never read. Returns (folder, G)."""
    import json

    from safetensors.torch import save_file

    from trainer import checkpoint as ckpt
    from trainer.config import load_run_config
    from trainer.models import build_networks

    torch.manual_seed(seed)
    G, _ = build_networks(load_run_config(run_dir))
    folder = run_dir / "checkpoints" / f"step-{step:08d}"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(folder / "ema.safetensors"))
    (folder / "state.json").write_text(json.dumps({"step": step, "images_seen": images_seen}))
    files = {p.name: {"bytes": p.stat().st_size, "sha256": ckpt._sha256(p)} for p in folder.iterdir()}
    (folder / ckpt.MANIFEST).write_text(json.dumps({"files": files}))
    return folder, G

import pytest
import torch


def tiny_generator(c_dim: int = 10, channels: int = 1, resolution: int = 32, seed: int = 0):
    from trainer.models.stylegan2_generator import Generator

    torch.manual_seed(seed)
    G = Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=resolution, img_channels=channels,
                  mapping_layers=2, channel_base=256, channel_max=16)
    # Non-zero noise strengths and w_avg, so noise and truncation paths are really exercised.
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
        G.mapping.w_avg.normal_()
    return G.eval()


@pytest.fixture
def tiny_export(tmp_path):
    from trainer.export import export_generator

    out = tmp_path / "export"
    export_generator(tiny_generator(), out, class_names=[str(i) for i in range(10)])
    return out

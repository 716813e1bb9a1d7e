"""Co-modulated StyleGAN2 generator for inpainting (after Zhao et al. 2021, co-mod-GAN): an image
encoder reads (masked image, mask); its 4x4 output becomes a global code that joins the mapping
network's w in every style (co-modulation), and its feature map at each resolution is added to the
synthesis features of that resolution (skip connections), through the synthesis network's
`attend(resolution, x)` extension point. Chosen with `inpaint.generator=comod`; the plain U-Net
(`trainer.models.inpaint`) stays the default. The composite is taken by `InpaintGenerator`.

Stochastic styles: z is drawn per sample while training; in eval mode (exports, samplers, gates)
z is 0, so a given image and mask always get the same fill.
"""

from __future__ import annotations

import torch
from torch import nn

from trainer.models.layers import FullyConnectedLayer, MappingNetwork
from trainer.models.stylegan2_generator import SynthesisNetwork, channels_at


class CoModNet(nn.Module):
    """(masked image + mask [N, in_channels, R, R]) -> raw fill [N, img_channels, R, R]."""

    def __init__(
        self,
        *,
        in_channels: int,
        img_channels: int,
        resolution: int,
        channel_base: int,
        channel_max: int,
        w_dim: int,
        mapping_layers: int,
    ):
        super().__init__()
        self.w_dim = w_dim
        resolutions = [2**i for i in range(2, resolution.bit_length())]  # 4 .. R
        self.from_image = nn.Conv2d(in_channels, channels_at(resolution, channel_base, channel_max), 1)
        self.down = nn.ModuleDict()  # "r" -> features at r/2 from features at r
        for res in reversed(resolutions[1:]):
            c_in, c_out = channels_at(res, channel_base, channel_max), channels_at(res // 2, channel_base, channel_max)
            self.down[str(res)] = nn.Sequential(
                nn.Conv2d(c_in, c_in, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c_in, c_out, 3, 2, 1), nn.LeakyReLU(0.2)
            )
        c4 = channels_at(4, channel_base, channel_max)
        self.to_global = FullyConnectedLayer(c4 * 16, w_dim, activation="lrelu")
        self.skip = nn.ModuleDict(
            {
                str(r): nn.Conv2d(
                    channels_at(r, channel_base, channel_max), channels_at(r, channel_base, channel_max), 1
                )
                for r in resolutions
            }
        )
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            img_resolution=resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            conv_clamp=256,
        )
        self.mapping = MappingNetwork(
            z_dim=w_dim, c_dim=0, w_dim=w_dim, num_ws=self.synthesis.num_ws, num_layers=mapping_layers, w_avg_beta=None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.from_image(x)
        features = {x.shape[2]: h}
        for block in self.down.values():  # R -> 4
            h = block(h)
            features[h.shape[2]] = h
        code = self.to_global(h.flatten(1))  # [N, w_dim]
        if self.training:
            z = torch.randn([x.shape[0], self.w_dim], device=x.device, dtype=x.dtype)
        else:
            z = torch.zeros([x.shape[0], self.w_dim], device=x.device, dtype=x.dtype)
        ws = self.mapping(z, None) + code[:, None, :]  # co-modulation: [N, num_ws, w_dim]

        def attend(resolution: int, feats: torch.Tensor) -> torch.Tensor:
            return feats + self.skip[str(resolution)](features[resolution].to(feats.dtype))

        return self.synthesis(ws, noise_mode="random" if self.training else "const", attend=attend)

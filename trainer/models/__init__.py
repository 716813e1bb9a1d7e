"""Model families. Each family registers a builder that makes (G, D) from the config.

The registry is an explicit dict of functions (no string-to-class lookups), and an export's JSON
names its family so `trainer.export` can rebuild the generator without the training config.
"""

from __future__ import annotations

from typing import Callable

from torch import nn


def _build_stylegan2(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.models.stylegan2_discriminator import Discriminator
    from trainer.models.stylegan2_generator import Generator

    m, d = cfg.model, cfg.data
    G = Generator(
        z_dim=m.z_dim,
        c_dim=cfg.c_dim,
        w_dim=m.w_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        mapping_layers=m.mapping_layers,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
        conv_clamp=m.conv_clamp,
        mapping_lr_mult=m.mapping_lr_mult,
    )
    D = Discriminator(
        c_dim=cfg.c_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
        mbstd_group=m.mbstd_group,
        conv_clamp=m.conv_clamp,
        mapping_layers=m.mapping_layers,
    )
    return G, D


def _build_dcgan(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.models.dcgan import DCGANDiscriminator, DCGANGenerator

    m, d = cfg.model, cfg.data
    G = DCGANGenerator(
        z_dim=m.z_dim,
        c_dim=cfg.c_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
    )
    # Batch norm couples the samples of a batch, which breaks WGAN-GP's per-sample penalty.
    D = DCGANDiscriminator(
        c_dim=cfg.c_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
        norm="none" if cfg.loss.kind == "wgan_gp" else "batch",
    )
    return G, D


def _build_mlp(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.models.mlp import MLPDiscriminator, MLPGenerator

    m, d = cfg.model, cfg.data
    G = MLPGenerator(
        z_dim=m.z_dim,
        c_dim=cfg.c_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        hidden=m.mlp_hidden,
        layers=m.mlp_layers,
        batch_norm=m.mlp_batch_norm,
    )
    D = MLPDiscriminator(
        c_dim=cfg.c_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        hidden=m.mlp_hidden,
        layers=m.mlp_layers,
        dropout=m.mlp_dropout,
        mbstd_group=m.mbstd_group if m.mlp_minibatch_std else 0,
    )
    return G, D


def _build_biggan(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.models.biggan import BigGANDiscriminator, BigGANGenerator

    m, d = cfg.model, cfg.data
    G = BigGANGenerator(
        z_dim=m.z_dim,
        c_dim=cfg.c_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
        embed_dim=m.class_embed_dim,
        attention_res=m.attention_res,
    )
    D = BigGANDiscriminator(
        c_dim=cfg.c_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
        attention_res=m.attention_res,
    )
    return G, D


def _build_progan(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.models.progan import ProGANDiscriminator, ProGANGenerator

    m, d = cfg.model, cfg.data
    G = ProGANGenerator(
        z_dim=m.z_dim,
        c_dim=cfg.c_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
    )
    D = ProGANDiscriminator(
        c_dim=cfg.c_dim,
        img_resolution=d.resolution,
        img_channels=d.channels,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
        mbstd_group=m.mbstd_group,
    )
    return G, D


def _build_cyclegan(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.models.cyclegan import CycleDiscriminators, CycleGenerators

    m, d = cfg.model, cfg.data
    G = CycleGenerators(
        img_resolution=d.resolution, img_channels=d.channels, filters=m.resnet_filters, blocks=m.resnet_blocks
    )
    D = CycleDiscriminators(
        img_resolution=d.resolution, img_channels=d.channels, filters=m.resnet_filters, layers=m.patch_layers
    )
    return G, D


def _build_pix2pix(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.data.paired import input_channels_of
    from trainer.models.pix2pix import Pix2PixDiscriminator, Pix2PixGenerator

    p, d = cfg.pix2pix, cfg.data
    in_channels = p.input_channels or input_channels_of(p.transform, d.channels)
    G = Pix2PixGenerator(
        img_resolution=d.resolution,
        img_channels=d.channels,
        in_channels=in_channels,
        c_dim=cfg.c_dim,
        filters=p.filters,
        depth=p.depth,
    )
    D = Pix2PixDiscriminator(
        img_resolution=d.resolution,
        img_channels=d.channels,
        in_channels=in_channels,
        c_dim=cfg.c_dim,
        filters=p.d_filters,
        layers=p.patch_layers,
    )
    return G, D


def _build_inpaint(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.models.inpaint import InpaintGenerator
    from trainer.models.pix2pix import Pix2PixDiscriminator

    p, d = cfg.pix2pix, cfg.data
    m = cfg.model
    G = InpaintGenerator(
        img_resolution=d.resolution,
        img_channels=d.channels,
        filters=p.filters,
        depth=p.depth,
        prefill=cfg.inpaint.prefill,
        prefill_equation=cfg.inpaint.prefill_equation,
        generator=cfg.inpaint.generator,
        channel_base=m.channel_base,
        channel_max=m.channel_max,
        w_dim=m.w_dim,
        mapping_layers=m.mapping_layers,
    )
    # D judges the composite beside the mask (in_channels=1: the mask is its condition)
    D = Pix2PixDiscriminator(
        img_resolution=d.resolution, img_channels=d.channels, in_channels=1, filters=p.d_filters, layers=p.patch_layers
    )
    return G, D


def _build_esrgan(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.models.esrgan import build_esrgan

    return build_esrgan(cfg)


def _build_text2img(cfg) -> tuple[nn.Module, nn.Module]:
    from trainer.models.text2img import build

    return build(cfg)


# family -> builder of (G, D) from a Config
FAMILIES: dict[str, Callable] = {
    "stylegan2": _build_stylegan2,
    "dcgan": _build_dcgan,
    "mlp": _build_mlp,
    "biggan": _build_biggan,
    "progan": _build_progan,
    "cyclegan": _build_cyclegan,
    "pix2pix": _build_pix2pix,
    "inpaint": _build_inpaint,
    "esrgan": _build_esrgan,
    "text2img": _build_text2img,
}


def generator_classes() -> dict[str, type[nn.Module]]:
    """family -> generator class, rebuilt by exports from its recorded `init_kwargs`."""
    from trainer.models.biggan import BigGANGenerator
    from trainer.models.cyclegan import CycleGenerators
    from trainer.models.dcgan import DCGANGenerator
    from trainer.models.esrgan import RRDBNet
    from trainer.models.inpaint import InpaintGenerator
    from trainer.models.mlp import MLPGenerator
    from trainer.models.pix2pix import Pix2PixGenerator
    from trainer.models.progan import ProGANGenerator
    from trainer.models.stylegan2_generator import Generator
    from trainer.models.text2img import TextGenerator

    return {
        "stylegan2": Generator,
        "dcgan": DCGANGenerator,
        "mlp": MLPGenerator,
        "biggan": BigGANGenerator,
        "progan": ProGANGenerator,
        "cyclegan": CycleGenerators,
        "pix2pix": Pix2PixGenerator,
        "inpaint": InpaintGenerator,
        "esrgan": RRDBNet,
        "text2img": TextGenerator,
    }


def build_networks(cfg) -> tuple[nn.Module, nn.Module]:
    return FAMILIES[cfg.model.family](cfg)


def build_generator(family: str, init_kwargs: dict) -> nn.Module:
    generators = generator_classes()
    if family not in generators:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(sorted(generators))}")
    return generators[family](**init_kwargs)

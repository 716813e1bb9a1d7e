"""Per-family training steps ("recipes"): what the phases of one step are for a model family.

A recipe implements `trainer.phases.Recipe` and sees the loop only through the
`trainer.phases.StepContext` it is handed each step; it never imports the loop. This package's
one job is the table from `model.family` to its recipe (a test checks every family has one).
"""

from __future__ import annotations

from typing import Callable

import torch

from trainer.phases import Recipe


def _stylegan2(cfg, device) -> Recipe:
    from trainer.recipes.stylegan2 import StyleGAN2Recipe

    return StyleGAN2Recipe(cfg, device=device)


def _adversarial(cfg, device) -> Recipe:
    from trainer.recipes.adversarial import AdversarialRecipe

    return AdversarialRecipe(cfg, device=device)


def _progan(cfg, device) -> Recipe:
    from trainer.recipes.progan import ProGANRecipe

    return ProGANRecipe(cfg, device=device)


def _cyclegan(cfg, device) -> Recipe:
    from trainer.recipes.cyclegan import CycleGANRecipe

    return CycleGANRecipe(cfg, device=device)


def _pix2pix(cfg, device) -> Recipe:
    from trainer.recipes.pix2pix import Pix2PixRecipe

    return Pix2PixRecipe(cfg, device=device)


def _inpaint(cfg, device) -> Recipe:
    from trainer.recipes.inpaint import InpaintRecipe

    return InpaintRecipe(cfg, device=device)


def _esrgan(cfg, device) -> Recipe:
    from trainer.recipes.esrgan import ESRGANRecipe

    return ESRGANRecipe(cfg, device=device)


def _text2img(cfg, device) -> Recipe:
    from trainer.recipes.text2img import Text2ImgRecipe

    return Text2ImgRecipe(cfg, device=device)


# family -> recipe factory; every family in trainer.models.FAMILIES has one (a test checks).
RECIPES: dict[str, Callable[..., Recipe]] = {
    "stylegan2": _stylegan2,
    "dcgan": _adversarial,
    "mlp": _adversarial,
    "biggan": _adversarial,
    "progan": _progan,
    "cyclegan": _cyclegan,
    "pix2pix": _pix2pix,
    "inpaint": _inpaint,
    "esrgan": _esrgan,
    "text2img": _text2img,
}


def build_recipe(cfg, *, device: torch.device) -> Recipe:
    family = cfg.model.family
    if family not in RECIPES:
        raise ValueError(f"model.family={family!r} has no training recipe; valid choices: {', '.join(sorted(RECIPES))}")
    return RECIPES[family](cfg, device)

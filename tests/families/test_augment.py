"""DiffAugment and ADA: the ops, their double backward (R1/WGAN-GP run through them), ADA's p rule."""

from pathlib import Path

import pytest
import torch

from trainer import losses
from trainer.augment import AdaptiveAugment, AugmentedCritic, DiffAugment, translate
from trainer.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_translate_shifts_with_zero_fill():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(2, 1, 1, 1)
    out = translate(x, torch.tensor([1, 0]), torch.tensor([0, -1]), 1)
    assert torch.equal(out[0, 0, :, 1:], x[0, 0, :, :3]) and (out[0, 0, :, 0] == 0).all()  # right by 1
    assert torch.equal(out[1, 0, :3], x[1, 0, 1:]) and (out[1, 0, 3] == 0).all()  # up by 1


@pytest.mark.parametrize(
    "augment",
    [
        DiffAugment(("color", "translation", "cutout")),
        AdaptiveAugment(p=1.0, target=0.6, interval=4, adjust_kimg=1, batch_size=8, device=torch.device("cpu")),
    ],
    ids=["diffaugment", "ada"],
)
def test_augmentations_change_images_and_allow_double_backward(augment):
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    out = augment(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    conv = torch.nn.Conv2d(3, 1, 3)
    critic = AugmentedCritic(lambda img, c: conv(img).mean(dim=[1, 2, 3])[:, None], augment)
    r1 = losses.discriminator_r1(critic, x, None, gamma=1.0, interval=1)
    r1.total.backward()  # grad of a grad through the augmentation
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_ada_with_p_zero_is_the_identity():
    ada = AdaptiveAugment(p=0.0, target=0.6, interval=4, adjust_kimg=1, batch_size=8, device=torch.device("cpu"))
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(ada(x), x)


def test_ada_moves_p_by_the_sign_of_r_t_minus_target_every_interval():
    ada = AdaptiveAugment(p=0.5, target=0.6, interval=2, adjust_kimg=0.1, batch_size=10, device=torch.device("cpu"))
    step = 10 * 2 / 100  # batch * interval / (kimg * 1000)
    ada.observe(torch.tensor(1.0))
    ada.update(1)
    assert ada.p == 0.5  # not yet an update step
    ada.observe(torch.tensor(0.8))
    ada.update(2)  # r_t = 0.9 > 0.6: D is overfitting, augment more
    torch.testing.assert_close(ada.p, torch.tensor(0.5 + step))
    for s in (3, 4):
        ada.observe(torch.tensor(-1.0))
        ada.update(s)
    torch.testing.assert_close(ada.p, torch.tensor(0.5))
    for s in range(5, 40):
        ada.observe(torch.tensor(-1.0))
        ada.update(s)
    assert ada.p == 0.0  # clamped
    assert set(ada.rank_tensors()) == {"ada_p", "ada_acc"}


@pytest.mark.parametrize(
    "override, words",
    [
        (["augment.kind=adaptive"], ["augment.kind", "none", "diffaugment", "ada"]),
        (["augment.policy=color,zoom"], ["augment.policy", "translation", "cutout"]),
        (["augment.ada_p=2"], ["augment.ada_p"]),
        (["augment.ada_target=1.5"], ["augment.ada_target"]),
    ],
)
def test_bad_augment_settings_name_the_key(override, words):
    with pytest.raises(ConfigError) as info:
        load_config(ROOT / "configs/dcgan.yaml", override)
    for word in words:
        assert word in str(info.value)

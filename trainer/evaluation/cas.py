"""Classification Accuracy Score (Ravuri and Vinyals, 2019): train a classifier on generated
images only, test it on real ones. docs/SYNTH.md.

What is measured, for N images per class (`--cas-per-class`, default 100):
  * CAS: the classifier below trained on N generated images of each class, exactly the images
    `hiresgan synth --per-class N --seed S --truncation PSI` writes (same latents, same uint8
    quantization), tested on real images;
  * the ceiling: the same classifier, same seed and schedule, trained on N real images per class.
Both are tested on the same real images, overall and per class. The ceiling classifier also
reads the generated images (`cas_fake_read`): low there is class leakage, high there with a low
CAS is images too alike to teach the class (mode dropping). The real images are split per
class with a seeded permutation: the first N of each class train the ceiling, all the others are
the test set, so no image the ceiling learned from is ever tested on. (The generator itself may
have trained on them all: give `--data` a held-out set for a test the GAN never saw.) With
`--cas-ceiling-data` the ceiling's N per class come from that set instead, and every image of
`--data` is tested (a small held-out set then keeps all its images for the test). A text-to-image
export's classes are prompts (`--classes`, label k of the real shards = prompt k).

The classifier (small on purpose, the same for every export, about 10 s on one CPU core): images
resized to 16x16 (area filter) and scaled to [-1, 1]; three blocks conv3x3 - batch norm - ReLU of
16, 32 and 64 channels, 2x2 max-pool after the first two, global average pool, dropout 0.3,
linear(K). Adam (lr 3e-3, cosine decay to 0), batch 64 drawn with replacement, a fixed 300 steps
whatever N is (small and large sets get the same budget), each batch shifted by up to 1 pixel (seeded);
weights, dropout and batches come from `seed`, and it runs on one CPU thread, so the same inputs
give the same accuracy. 16x16
is enough to tell classes apart on the digits (the ceiling reaches ~97% from 100 real images per
class) and keeps the cost flat at any resolution; it judges class identity, not fine detail.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

CLASSIFIER_SIZE = 16  # every export is classified at 16x16, so the cost stays small at any resolution
STEPS = 300
BATCH = 64
LEARNING_RATE = 3e-3
SHIFT = 1  # pixels of random translation per training batch
MIN_TEST_PER_CLASS = 10  # real images a class needs beyond the ceiling's N
DESCRIPTION = (
    f"CNN conv16-conv32-conv64 (3x3, batch norm, ReLU, 2x max-pool) + GAP + dropout 0.3 + linear, "
    f"{CLASSIFIER_SIZE}x{CLASSIFIER_SIZE} input, Adam lr {LEARNING_RATE} cosine to 0, batch {BATCH}, "
    f"{STEPS} steps, +-{SHIFT} px shifts"
)


class CASError(ValueError):
    """Inputs CAS cannot use; the message names the flag or file and how to fix it."""


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def classifier(channels: int, num_classes: int) -> nn.Module:
    return nn.Sequential(
        *_block(channels, 16),
        nn.MaxPool2d(2),  # [N, 16, 8, 8]
        *_block(16, 32),
        nn.MaxPool2d(2),  # [N, 32, 4, 4]
        *_block(32, 64),  # [N, 64, 4, 4]
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(64, num_classes),
    )


def to_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float [N, C, 16, 16] in [-1, 1]."""
    x = pixels.float() / 127.5 - 1
    if x.shape[-1] != CLASSIFIER_SIZE:
        x = nn.functional.interpolate(
            x,
            size=(CLASSIFIER_SIZE, CLASSIFIER_SIZE),
            mode="area" if x.shape[-1] > CLASSIFIER_SIZE else "bilinear",
            align_corners=None,
        )
    return x


def _shifted(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    dx, dy = (int(v) for v in torch.randint(-SHIFT, SHIFT + 1, (2,), generator=gen))
    padded = nn.functional.pad(x, (SHIFT, SHIFT, SHIFT, SHIFT), mode="replicate")
    h, w = x.shape[-2:]
    return padded[..., SHIFT + dy : SHIFT + dy + h, SHIFT + dx : SHIFT + dx + w]


def train_classifier(
    pixels: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    seed: int = 0,
    steps: Optional[int] = None,
    weights: Optional[torch.Tensor] = None,
) -> nn.Module:
    """The documented classifier trained on uint8 [N, C, H, W] images with int64 labels [N];
    `weights` [N] (optional) makes batches draw image i with probability proportional to it."""
    x, y, steps = to_input(pixels), labels.long(), steps or STEPS
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), one_thread():  # init and dropout from `seed`; caller's RNG untouched
        torch.manual_seed(seed)
        net = classifier(x.shape[1], num_classes)
        params = list(net.parameters())
        moments = [(torch.zeros_like(q), torch.zeros_like(q)) for q in params]
        net.train()
        for step in range(1, steps + 1):
            if weights is None:
                idx = torch.randint(len(x), (min(BATCH, len(x)),), generator=gen)
            else:
                idx = torch.multinomial(weights, BATCH, replacement=True, generator=gen)
            loss = nn.functional.cross_entropy(net(_shifted(x[idx], gen)), y[idx])
            grads = torch.autograd.grad(loss, params)
            # Cosine decay to 0: the last steps settle instead of jumping, so the score does not
            # hinge on where the final step happened to land (seeds moved the ceiling 94-98% without).
            lr = LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))
            _adam_step(params, grads, moments, step, lr)
    return net.eval()


@torch.no_grad()
def _adam_step(
    params, grads, moments, step: int, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
) -> None:
    """Plain Adam, written out: torch.optim's first use imports torch._dynamo, which took 26 s of a
    35 s CAS run on a busy 2-core box, for a network that trains in seconds."""
    for q, g, (m, v) in zip(params, grads, moments):
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v / (1 - beta2**step)).sqrt_().add_(eps)
        q.addcdiv_(m, denom, value=-lr / (1 - beta1**step))


@contextmanager
def one_thread() -> Iterator[None]:
    """Run on one CPU thread: the network is too small to gain from more (on a busy 2-core box two
    threads were 5x slower), and a fixed thread count keeps the float results reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def accuracy(net: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[float, list]:
    """(overall accuracy, per-class accuracy list; None for a class absent from the test set)."""
    with one_thread():
        pred = torch.cat([net(to_input(chunk)).argmax(1) for chunk in pixels.split(256)])
    right = pred == labels
    per = [float(right[labels == k].float().mean()) if (labels == k).any() else None for k in range(num_classes)]
    return float(right.float().mean()), per


def read_labelled(data: str, *, resolution: int, channels: int, limit: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Real images (uint8 [N, C, res, res]) and labels of a shard spec, in shard order."""
    from trainer.data.reader import ErrorPolicy, read_shard
    from trainer.data.sources import resolve_urls
    from trainer.data.stream import decode_image, decode_label

    images, labels = [], []
    policy = ErrorPolicy("fail")
    for url in resolve_urls(data):
        for sample in read_shard(url, policy):
            if "cls" not in sample:
                raise CASError(
                    f"--data: sample {sample.get('__key__')} in {url} has no 'cls' label; CAS tests on "
                    "labelled real shards (write them with `hiresgan shards --labels ...`)"
                )
            images.append(decode_image(sample, resolution, channels))
            labels.append(decode_label(sample))
            if limit and len(images) == limit:
                break
        if limit and len(images) == limit:
            break
    if not images:
        raise CASError(f"--data {data!r} holds no images")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)


def split_real(
    labels: torch.Tensor, classes: Sequence[int], per_class: int, *, seed: int, spare: int = MIN_TEST_PER_CLASS
) -> tuple[list, list]:
    """(indices that train the ceiling: `per_class` of each class, indices of the test set: the
    rest of those classes); disjoint by construction. A class needs `spare` images beyond
    `per_class` (0 when the test set is separate, --cas-ceiling-data)."""
    train, test = [], []
    for k in classes:
        members = (labels == k).nonzero()[:, 0].numpy()
        if len(members) < per_class + spare:
            where = "--data" if spare else "--cas-ceiling-data"
            raise CASError(
                f"--cas-per-class {per_class}: class {k} has {len(members)} real images in {where}; the "
                f"ceiling trains on {per_class}"
                + (f" and at least {spare} more are needed for testing" if spare else "")
                + ": lower --cas-per-class or give more real data"
            )
        order = members[np.random.default_rng([seed, k, 0xCA5]).permutation(len(members))]
        train.extend(order[:per_class].tolist())
        test.extend(order[per_class:].tolist())
    return train, test


def conditioning(G: nn.Module, description: dict, prompts: Optional[Sequence[str]]) -> tuple[int, list, Callable]:
    """(number of classes, class names, labels [n] -> G's condition input): the export's one-hot
    classes, or for a text export its prompts (label k = prompt k, tokens as `hiresgan synth`)."""
    if prompts:
        from trainer.sampling.synth import text_conditioning

        cond = text_conditioning(description, prompts, "--classes")
        return cond.num_classes, list(cond.names), cond.condition
    c_dim = int(G.c_dim)
    names = description.get("class_names") or [str(k) for k in range(c_dim)]
    return c_dim, names, lambda labels: nn.functional.one_hot(torch.tensor(labels), c_dim).float()


@torch.no_grad()
def generated(
    G: nn.Module,
    description: dict,
    classes: Sequence[int],
    per_class: int,
    *,
    seed: int,
    truncation: float,
    batch: int = 64,
    prompts: Optional[Sequence[str]] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images `hiresgan synth` draws (same latents and order), as uint8 [N, C, H, W] + labels."""
    from trainer.sampling.synth import latents, sample_seed

    condition = conditioning(G, description, prompts)[2]
    plan = [(classes[i % len(classes)], i // len(classes)) for i in range(per_class * len(classes))]
    device = next(G.parameters()).device
    images = []
    for start in range(0, len(plan), batch):
        chunk = plan[start : start + batch]
        z = latents([sample_seed(seed, k, n) for k, n in chunk], G.z_dim).to(device)
        c = condition([k for k, _ in chunk]).to(device)
        out = G(z, c, truncation_psi=truncation, noise_mode="const")
        images.append((out * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu())  # as trainer.images.to_uint8
    return torch.cat(images), torch.tensor([k for k, _ in plan], dtype=torch.int64)


def check_cas(
    G: nn.Module,
    description: dict,
    *,
    per_class: int,
    export: str = "the export",
    prompts: Optional[Sequence[str]] = None,
) -> None:
    """CASError unless `G` has classes (a text export: `prompts`) and `per_class` is usable
    (checked before any slow work)."""
    from trainer.sampling.synth import TEXT_FAMILIES

    if description.get("family") in TEXT_FAMILIES:
        if not prompts:
            raise CASError(
                f"--metrics cas: {export} is a text-to-image export, whose classes are prompts: give them "
                "with --classes PROMPT ... in the order of --data's labels (label k = prompt k; the "
                "generated images are those `hiresgan synth EXPORT --classes PROMPT ...` writes); for the "
                "colour digits `python -m trainer.data.colour_digit_prompts OUT --prompts PROMPT ...` writes "
                "such real shards"
            )
        if len(set(prompts)) != len(prompts):
            raise CASError("--classes names a prompt twice; give each prompt once")
    elif prompts:
        raise CASError(
            f"--classes: {export} is not a text-to-image export (family {description.get('family')}); "
            "--classes gives a text export's prompts, CAS of a class-conditional export scores the classes "
            "of --data: drop --classes"
        )
    elif int(getattr(G, "c_dim", 0)) == 0:
        raise CASError(
            f"--metrics cas: {export} is unconditional (family {description.get('family')}): CAS "
            "trains a classifier on generated images of each class, so it needs a class-conditional "
            "export; drop cas from --metrics for this one"
        )
    if not isinstance(per_class, int) or per_class < 1:
        raise CASError(f"--cas-per-class {per_class}: must be >= 1 (generated and real images per class)")


def cas(
    G: nn.Module,
    description: dict,
    data: str,
    *,
    per_class: int = 100,
    seed: int = 0,
    truncation: float = 1.0,
    steps: Optional[int] = None,
    export: str = "the export",
    real: Optional[tuple] = None,
    prompts: Optional[Sequence[str]] = None,
    ceiling_data: Optional[str] = None,
    ceiling_real: Optional[tuple] = None,
) -> dict:
    """The CAS report (keys below, accuracies in 0..1) of a class-conditional generator (or a text
    export with `prompts` as its classes) against the labelled real shards `data`. With
    `ceiling_data`, every image of `data` is tested and the ceiling trains on `per_class` of each
    class from `ceiling_data` instead (a held-out test set that keeps its every image).
    `real` / `ceiling_real` = (images, labels) skip reading the shards (tests, tables)."""
    check_cas(G, description, per_class=per_class, export=export, prompts=prompts)
    num_classes, names, _ = conditioning(G, description, prompts)
    steps = steps or STEPS
    if prompts:  # label k of every real set must be prompt k
        for flag, spec in (("--data", data), ("--cas-ceiling-data", ceiling_data)):
            check_prompt_names(flag, spec, prompts)
    images, labels = (
        real if real is not None else read_labelled(data, resolution=G.img_resolution, channels=G.img_channels)
    )
    if ceiling_data and ceiling_real is None:
        ceiling_real = read_labelled(ceiling_data, resolution=G.img_resolution, channels=G.img_channels)
    separate = ceiling_real is not None
    for flag, y in (("--data", labels), ("--cas-ceiling-data", ceiling_real[1] if separate else labels)):
        if int(y.max()) >= num_classes:
            raise CASError(
                f"{flag} holds label {int(y.max())} but {export} has {num_classes} classes"
                f"{' (the prompts of --classes)' if prompts else ''}; give real shards of those classes"
            )
    classes = sorted(set(labels.tolist()))
    if separate:
        short = [k for k in classes if int((labels == k).sum()) < MIN_TEST_PER_CLASS]
        if short:
            raise CASError(
                f"--data: class(es) {', '.join(names[k] for k in short)} have fewer than {MIN_TEST_PER_CLASS} "
                "real test images; give more real data"
            )
        train_idx, _ = split_real(ceiling_real[1], classes, per_class, seed=seed, spare=0)
        test_x, test_y = images, labels
        ceiling_x, ceiling_y = ceiling_real[0][train_idx], ceiling_real[1][train_idx]
    else:
        train_idx, test_idx = split_real(labels, classes, per_class, seed=seed)
        test_x, test_y = images[test_idx], labels[test_idx]
        ceiling_x, ceiling_y = images[train_idx], labels[train_idx]
    fake_x, fake_y = generated(G, description, classes, per_class, seed=seed, truncation=truncation, prompts=prompts)
    synthetic = train_classifier(fake_x, fake_y, num_classes, seed=seed, steps=steps)
    ceiling = train_classifier(ceiling_x, ceiling_y, num_classes, seed=seed, steps=steps)
    overall, per = accuracy(synthetic, test_x, test_y, num_classes)
    overall_real, per_real = accuracy(ceiling, test_x, test_y, num_classes)
    # The ceiling classifier reading the generated images tells the two failures CAS mixes apart:
    # low here = class leakage (a "5" that reads as something else); high here but low CAS = the
    # images are right but too alike (mode dropping) to teach a classifier the class.
    fake_read, per_fake = accuracy(ceiling, fake_x, fake_y, num_classes)
    return {
        "cas": overall,
        "cas_real": overall_real,
        "cas_gap": overall_real - overall,
        "cas_per_class": {names[k]: per[k] for k in classes},
        "cas_real_per_class": {names[k]: per_real[k] for k in classes},
        "cas_fake_read": fake_read,
        "cas_fake_read_per_class": {names[k]: per_fake[k] for k in classes},
        "cas_setup": {
            "per_class": per_class,
            "seed": seed,
            "truncation": truncation,
            "classes": len(classes),
            "num_test": len(test_y),
            "num_real_train": len(ceiling_y),
            "classifier": DESCRIPTION,
            "steps": steps,
            "split": (
                "test: every image of --data; the ceiling trains on per_class of each class of --cas-ceiling-data "
                "(seeded)"
                if separate
                else "per class, seeded: first per_class train the ceiling, the rest test"
            ),
            **({"prompts": list(prompts)} if prompts else {}),
        },
    }


def check_prompt_names(flag: str, data: Optional[str], prompts: Sequence[str]) -> None:
    """CASError when a real set's manifest names its classes otherwise than --classes: its labels
    would then number other prompts (a set without a manifest or class names is taken as given)."""
    from trainer.data.sources import find_manifest

    names = (find_manifest(data) or {}).get("class_names") if data else None
    if names and list(names) != list(prompts):
        raise CASError(
            f"--classes {list(prompts)} differ from the class names in {flag}'s manifest {list(names)}: label k of "
            "the real shards must be prompt k; give --classes the prompts the shards were written for, in order"
        )

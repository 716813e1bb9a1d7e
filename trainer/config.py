"""The typed configuration schema: load YAML, merge dot-list overrides, validate, save.

Every field has a docstring-like comment; validation names the offending key and the valid
choices, and runs before any process starts (the launcher calls `load_config`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trainer.superres.settings import SuperResConfig, validate_superres


class ConfigError(ValueError):
    """A configuration problem, with a message that names the key and how to fix it."""


@dataclass
class RunConfig:
    name: str = "run"  # run directory name: outputs go to <out_dir>/<name>/
    out_dir: str = "runs"  # parent folder of run directories
    seed: int = 0  # global seed; per-rank streams derive from it
    resume: str = "auto"  # "auto": continue the run dir's latest complete checkpoint; "none"; or a run dir / checkpoint path


@dataclass
class MixConfig:
    """data.mix: a second shard set mixed into every batch (docs/SYNTH.md), e.g. `hiresgan synth` output."""

    urls: str = ""  # shards mixed in (same kinds as data.urls); labels must share data.num_classes' classes
    fraction: float = 0.0  # share of each rank's batch from mix.urls, round(fraction * batch) images (0: off; 1: only)


@dataclass
class DataConfig:
    # shards: local brace pattern, folder, manifest.json, http(s)://, pipe:CMD, s3://, gs://
    # (several joined with '::'; see docs/DATA.md)
    urls: str = ""
    # Embedded data written to `urls`' folder first if missing: "digits", "edges2digits", "text2img_digits";
    # "photos" (scikit-image's bundled photos, trainer/data/photos.py: `urls` names the folder's `train`
    # shards, its `val` folder is held out); "edges2digits_unpaired" (CycleGAN: edge maps into `urls`,
    # digits into `urls_b`); "none": the user's own shards
    prepare: str = "none"
    resolution: int = 32  # training resolution (a power of two); images are resized to it on load
    channels: int = 3  # image channels (1 grayscale, 3 RGB)
    num_classes: int = 0  # 0: unconditional; >0: labels read from each sample's `cls`
    xflip: bool = False  # random horizontal flips (not for digits: a flipped 2 is no 2)
    workers: int = 1  # loader worker processes per rank (0: load in the training process)
    shuffle_buffer: int = 512  # samples held for shuffling within each worker's stream
    # unreadable shard/image/label: "skip" (counted, logged once per shard) or "fail" (stop, naming shard and key)
    on_error: str = "skip"
    retries: int = 3  # reopen attempts for a remote (http/pipe) shard that breaks off mid-read
    timeout: float = 60.0  # seconds an http(s) shard read may stall before it counts as broken
    urls_b: str = ""  # family cyclegan: shard URLs of domain B (`urls` is domain A)
    mix: MixConfig = field(default_factory=MixConfig)  # a second set mixed into each batch (off by default)


@dataclass
class ModelConfig:
    family: str = "stylegan2"  # model family; see trainer.models.FAMILIES
    z_dim: int = 512  # latent size
    w_dim: int = 512  # intermediate latent size
    mapping_layers: int = 8  # layers in the mapping network
    channel_base: int = 32768  # channels at resolution r are min(channel_base // r, channel_max)
    channel_max: int = 512
    conditional: bool = True  # use class labels when data.num_classes > 0
    mbstd_group: int = 4  # minibatch-stddev group size in D
    conv_clamp: Optional[float] = 256.0  # clamp conv outputs to +-this (None: no clamp)
    mapping_lr_mult: float = 0.01  # learning-rate multiplier of the mapping network
    mlp_hidden: int = 512  # family mlp: width of the hidden layers of G and D
    mlp_layers: int = 3  # family mlp: hidden layers in G and in D
    class_embed_dim: int = 32  # family biggan: size of the shared class embedding fed to G's batch norms
    attention_res: int = 16  # family biggan: resolution of the self-attention block in G and D (0: none)
    resnet_filters: int = 64  # family cyclegan: filters of the first G conv and of the first PatchGAN conv
    resnet_blocks: int = 6  # family cyclegan: residual blocks per generator (the paper: 6 at 128px, 9 at 256px)
    patch_layers: int = 3  # family cyclegan: stride-2 convs in each PatchGAN discriminator


@dataclass
class LossConfig:
    kind: str = "logistic"  # adversarial loss: logistic (non-saturating), hinge, or wgan_gp (every family)
    gp_weight: float = 10.0  # WGAN-GP gradient-penalty weight (loss.kind=wgan_gp only)
    drift_weight: float = 0.0  # weight of E[D(real)^2] in D's loss (ProGAN's epsilon_drift, 0.001; 0: off)
    cycle_weight: float = 10.0  # family cyclegan: weight of |G_ba(G_ab(a)) - a|_1 + |G_ab(G_ba(b)) - b|_1
    identity_weight: float = 5.0  # family cyclegan: weight of |G_ab(b) - b|_1 + |G_ba(a) - a|_1 (0: off)
    pool_size: int = 50  # family cyclegan: generated images kept per domain for D (0: no pool)
    n_critic: int = 1  # D (critic) steps per G step: G trains every n-th step (WGAN-GP paper: 5); dcgan, mlp, biggan, progan
    ortho_weight: float = 0.0  # BigGAN orthogonal regularization of G's weights (0: off; BigGAN uses 1e-4); not stylegan2
    r1_gamma: float = 10.0  # R1 weight gamma (penalty gamma/2 * |grad D(x)|^2)
    d_reg_interval: int = 16  # lazy R1: every N steps (0 disables R1)
    g_reg_interval: int = 4  # lazy path length: every N steps (0 disables)
    pl_weight: float = 2.0  # path-length weight (0 disables; stylegan2 only)
    pl_batch_shrink: int = 2  # path length runs on batch // this
    pl_decay: float = 0.01  # decay of the running path-length mean
    style_mixing: float = 0.9  # probability of mixing two latents per sample (stylegan2 only)


@dataclass
class AugmentConfig:
    kind: str = "none"  # augmentation of everything D sees (any family): none, diffaugment, ada
    policy: str = "color,translation,cutout"  # diffaugment: comma-separated ops from color, translation, cutout
    ada_p: float = 0.0  # ada: initial augmentation probability
    ada_target: float = 0.6  # ada: target of r_t = E[sign(D(real))]; above it p rises
    ada_interval: int = 4  # ada: steps between p updates
    ada_kimg: float = 500.0  # ada: p can move from 0 to 1 in this many kimg


@dataclass
class ProgressiveConfig:
    start_resolution: int = 4  # progan: the resolution growth starts at (a power of two <= data.resolution)
    stable_kimg: float = 600.0  # progan: kimg at each resolution at full strength (the paper: 600 / 800)
    fade_kimg: float = 600.0  # progan: kimg of linear fade-in (alpha 0 -> 1) per new resolution (0: no fade)


@dataclass
class OptimConfig:
    g_lr: float = 0.002
    d_lr: float = 0.002
    beta1: float = 0.0
    beta2: float = 0.99
    eps: float = 1e-8


@dataclass
class TrainConfig:
    batch_size: int = 32  # global batch (all ranks together); must divide by the world size
    kimg: float = 25000.0  # training length in thousands of real images shown to D
    ema_kimg: float = 10.0  # G_ema half-life in kimg
    ema_rampup: Optional[float] = 0.05  # half-life at most cur_kimg * this early on (None: off)
    zero_stage: int = 0  # DeepSpeed ZeRO stage for G and D: 0, 1 or 2
    precision: str = "fp32"  # "fp32" or "bf16"
    checkpoint_kimg: float = 50.0  # checkpoint every N kimg (and at the end)
    keep_checkpoints: int = 3  # complete checkpoints kept (at least 2)
    sample_kimg: float = 50.0  # sample grid every N kimg (and at the end)
    log_every: int = 20  # steps between metric/log flushes (the only host syncs)
    deterministic: bool = False  # deterministic algorithms (for exact resume tests)
    threads: int = 0  # torch CPU threads per rank (0: cores // local ranks)
    # check each Triton op against its reference on first use per device, falling back to the
    # reference on a mismatch (kernels/guard.py); false only where `make gpu-check` passed
    kernel_check: bool = True


@dataclass
class LaunchConfig:
    nproc_per_node: int = 1  # local ranks spawned by `hiresgan train`
    max_restarts: int = 0  # elastic-agent restarts of the worker group after a failure
    master_addr: str = "127.0.0.1"  # rendezvous host
    master_port: int = 0  # rendezvous port (0: a free one)
    backend: str = "auto"  # torch.distributed backend: auto (nccl on GPU, else gloo), gloo, nccl


@dataclass
class MetricsConfig:
    # Prometheus port of local rank 0 (local rank r serves port + r; a taken port moves on to the next
    # free one, written in the targets file); 0 disables. 19400 lies outside 9100-9999, the range
    # Prometheus allocates to exporters (node 9100, DCGM 9400, ...), and below the ephemeral ports.
    port: int = 19400
    # address the endpoint binds to: auto = 127.0.0.1 on one machine, the node's address (SLURM's
    # NodeAddr) under SLURM or a multi-node launch; or an address, or 0.0.0.0 for every interface
    bind: str = "auto"
    job: str = ""  # `job` label value (default: run.name)
    # Seconds a finishing rank keeps /metrics up until Prometheus has scraped its final values (it
    # returns at the first scrape after the end); at least the scrape interval. 0: stop at once.
    final_scrape_wait: float = 0.0
    tensorboard: bool = False  # also write TensorBoard events (every catalog series + sample grids) to RUN/tensorboard (rank 0)


@dataclass
class EvalConfig:
    """Evaluation inside training (trainer/evaluation/periodic.py); docs/EVALUATION.md."""

    every_kimg: float = 0.0  # evaluate G_ema on all ranks every N kimg and at the end (0: off)
    metrics: str = "fid"  # comma-separated subset of fid,kid,pr,is
    num_fake: int = 1000  # generated images (seeds 0..N-1, as `hiresgan eval`); published FIDs use 50000
    num_real: int = 50000  # real images at most: the first N in shard order, features cached
    data: str = ""  # real shards, a local brace pattern ("": data.urls)
    features: str = "digits"  # feature network: digits (1x32x32 images only) or inception
    inception_weights: str = ""  # features=inception: safetensors from `python -m trainer.evaluation.inception convert`
    inception_sha256: str = ""  # features=inception: the expected SHA-256 of inception_weights
    cache: str = "~/.cache/hiresgan/eval"  # folder for cached real features ("": no cache)


@dataclass
class Pix2PixConfig:
    """Families pix2pix and inpaint (docs/PAIRED.md): the U-Net G and PatchGAN D of both, and
    pix2pix's paired data and L1 weight."""

    # where the input of a pair comes from: none (paired shards: <key>.a.png input, <key>.b.png
    # target), or derived from each image on the fly: edges (Canny), gray, downscale
    transform: str = "none"
    input_channels: int = 0  # channels of the input (0: 1 for edges/gray, else data.channels)
    canny_sigma: float = 1.0  # transform edges: Gaussian sigma of the Canny detector
    downscale: int = 4  # transform downscale: the factor the input is reduced by (then scaled back up)
    l1_weight: float = 100.0  # pix2pix: weight of |G(input) - target|_1 beside the adversarial loss
    filters: int = 64  # channels of the U-Net's first level (x2 per level, at most x8)
    depth: int = 0  # U-Net levels (0: down to 1x1 at data.resolution, e.g. 8 at 256)
    d_filters: int = 64  # channels of the PatchGAN's first conv
    patch_layers: int = 3  # stride-2 convs of the PatchGAN (3: 70x70 patches)


@dataclass
class InpaintConfig:
    """Family inpaint (docs/PAIRED.md): masks and losses."""

    masks: str = "generate"  # "generate": free-form strokes plus boxes per sample; or a folder of mask PNGs (white = missing)
    strokes: int = 4  # generate: at most this many free-form strokes per mask
    boxes: int = 2  # generate: at most this many boxes per mask
    max_hole: float = 0.5  # generate: largest share of the image a mask may cover (redrawn above it)
    hole_l1: float = 1.0  # weight of the L1 distance inside the hole (0: adversarial only there)
    known_l1: float = 1.0  # weight of the L1 distance on the known pixels of G's raw output
    feature_matching: float = 0.0  # weight of D-feature matching between real and composite (0: off)
    prefill: bool = True  # G corrects a smooth (multigrid harmonic) fill of the hole rather than starting from gray
    # "unet": pix2pix's U-Net (any input size); "comod": a co-modulated StyleGAN2 synthesis network with an
    # image encoder (co-mod-GAN; the training size only), sized by model.channel_base/channel_max/w_dim/mapping_layers
    generator: str = "unet"


@dataclass
class TextConfig:
    """Family text2img (docs/TEXT2IMG.md): the text encoder and how text conditions G and D."""

    encoder: str = "builtin"  # builtin (trained with the GAN) or hf:PATH (a frozen local CLIP/T5 text model)
    tokenizer: str = ""  # builtin: a tokenizer JSON file; "": built from the caption words in the shards' manifest
    max_words: int = 1000  # builtin: vocabulary size cap (most frequent caption words; the rest are unknown)
    context: int = 16  # tokens per caption; longer captions are cut (with a warning when sampling)
    dim: int = 128  # builtin: embedding width of the text encoder
    layers: int = 2  # builtin: transformer blocks of the text encoder
    heads: int = 4  # builtin: attention heads of the text encoder (text.dim must divide by it)
    attn_res: int = 16  # G's blocks up to this resolution cross-attend to the caption tokens (0: none)
    attn_heads: int = 2  # heads of G's cross-attention
    mismatch_weight: float = 1.0  # matching-aware loss: weight of D(real image, wrong caption) as fake (0: off)


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    text: TextConfig = field(default_factory=TextConfig)
    pix2pix: Pix2PixConfig = field(default_factory=Pix2PixConfig)
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    sr: SuperResConfig = field(default_factory=SuperResConfig)  # family esrgan (trainer/superres/settings.py)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name

    @property
    def c_dim(self) -> int:
        """Label dimension the networks see (0 when unconditional)."""
        return self.data.num_classes if self.model.conditional else 0


# Metric names of eval.metrics (and of `hiresgan eval --metrics`).
EVAL_METRICS = ("fid", "kid", "pr", "is")

# Fields whose value must come from a fixed set.
CHOICES = {
    "data.prepare": ("none", "digits", "photos", "edges2digits", "edges2digits_unpaired", "text2img_digits"),
    "data.on_error": ("skip", "fail"),
    "train.precision": ("fp32", "bf16"),
    "train.zero_stage": (0, 1, 2),
    "launch.backend": ("auto", "gloo", "nccl"),
    "loss.kind": ("logistic", "hinge", "wgan_gp"),
    "augment.kind": ("none", "diffaugment", "ada"),
    "pix2pix.transform": ("none", "edges", "gray", "downscale"),
}

# Keys that only the StyleGAN2 family reads: other families refuse non-zero values rather than
# ignore them, so a config never claims a regularizer that is not applied.
STYLEGAN2_ONLY = ("loss.pl_weight", "loss.style_mixing")


def _fail(key: str, message: str) -> None:
    raise ConfigError(f"config key '{key}': {message}")


def _is_power_of_two(n: int) -> bool:
    return n >= 4 and (n & (n - 1)) == 0


def validate(cfg: Config) -> Config:
    """Check ranges and choices the type system cannot express; raise ConfigError naming the key."""
    from trainer.models import FAMILIES  # late: models import torch, config must stay light

    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            if key == "train.zero_stage" and value == 3:
                _fail(key, "ZeRO stage 3 is not supported: the two-engine GAN (G and D) breaks "
                      "under ZeRO-3 partitioned parameters (DeepSpeed issues #4923, #700); use 0, 1 or 2")
            _fail(key, f"got {value!r}; valid choices: {', '.join(map(str, allowed))}")
    if cfg.model.family not in FAMILIES:
        _fail("model.family", f"got {cfg.model.family!r}; valid choices: {', '.join(sorted(FAMILIES))}")
    if cfg.model.family not in ("stylegan2", "text2img"):  # text2img runs StyleGAN2's phases
        for key in STYLEGAN2_ONLY:
            section, name = key.split(".")
            if getattr(getattr(cfg, section), name) != 0:
                _fail(key, f"is {getattr(getattr(cfg, section), name)} but only model.family=stylegan2 uses it; "
                      f"set {key}=0 for model.family={cfg.model.family}")
    if cfg.loss.n_critic < 1:
        _fail("loss.n_critic", f"got {cfg.loss.n_critic}; the critic steps per G step must be at least 1")
    if cfg.loss.n_critic != 1 and cfg.model.family not in ("dcgan", "mlp", "biggan", "progan"):
        _fail("loss.n_critic", f"is applied by the dcgan, mlp, biggan and progan recipes, not model.family="
              f"{cfg.model.family}; set loss.n_critic=1")
    if cfg.model.family in ("stylegan2", "text2img") and cfg.loss.ortho_weight != 0:
        _fail("loss.ortho_weight", f"orthogonal regularization is not applied by model.family={cfg.model.family}; set it to 0 "
              "or pick model.family=biggan, dcgan or mlp")
    a = cfg.model.attention_res
    if a != 0 and not (_is_power_of_two(a) and 8 <= a <= cfg.data.resolution):
        _fail("model.attention_res", f"got {a}; must be 0 (none) or a power of two in 8..data.resolution={cfg.data.resolution}")
    ops = [op.strip() for op in cfg.augment.policy.split(",") if op.strip()]
    bad_ops = [op for op in ops if op not in ("color", "translation", "cutout")]
    if bad_ops or (cfg.augment.kind == "diffaugment" and not ops):
        _fail("augment.policy", f"got {cfg.augment.policy!r}; a comma-separated list of: color, translation, cutout")
    if not 0.0 <= cfg.augment.ada_p <= 1.0:
        _fail("augment.ada_p", f"got {cfg.augment.ada_p}; must be a probability in [0, 1]")
    if not -1.0 < cfg.augment.ada_target < 1.0:
        _fail("augment.ada_target", f"got {cfg.augment.ada_target}; r_t lies in [-1, 1], so the target must be in (-1, 1)")
    if cfg.model.family == "cyclegan":
        if not cfg.data.urls_b:
            _fail("data.urls_b", "is empty; model.family=cyclegan translates between data.urls (domain A) and "
                  "data.urls_b (domain B): set it to domain B's shard pattern")
        if cfg.c_dim:
            _fail("model.conditional", "is true; model.family=cyclegan translates images and takes no labels: "
                  "set model.conditional=false")
        if cfg.augment.kind != "none" or cfg.loss.r1_gamma > 0:
            _fail("augment.kind" if cfg.augment.kind != "none" else "loss.r1_gamma",
                  "is not supported with model.family=cyclegan; set augment.kind=none and loss.r1_gamma=0")
        if cfg.data.resolution < 16:
            _fail("data.resolution", f"got {cfg.data.resolution}; model.family=cyclegan needs at least 16")
    start = cfg.progressive.start_resolution
    if not (_is_power_of_two(start) and start <= cfg.data.resolution):
        _fail("progressive.start_resolution", f"got {start}; must be a power of two in 4..data.resolution={cfg.data.resolution}")
    if not cfg.progressive.stable_kimg > 0:
        _fail("progressive.stable_kimg", f"got {cfg.progressive.stable_kimg}; must be > 0")
    if cfg.progressive.fade_kimg < 0:
        _fail("progressive.fade_kimg", f"got {cfg.progressive.fade_kimg}; must be >= 0")
    if cfg.loss.kind == "wgan_gp" and not cfg.loss.gp_weight > 0:
        _fail("loss.gp_weight", f"got {cfg.loss.gp_weight}; loss.kind=wgan_gp needs a positive penalty weight (e.g. 10)")
    if not _is_power_of_two(cfg.data.resolution):
        _fail("data.resolution", f"got {cfg.data.resolution}; must be a power of two >= 4 (e.g. 32, 256, 1024)")
    if cfg.data.channels not in (1, 3):
        _fail("data.channels", f"got {cfg.data.channels}; valid choices: 1, 3")
    if not cfg.data.urls:
        _fail("data.urls", "is empty; set it to your shard pattern, e.g. data.urls='/data/ffhq/shard-{000000..000099}.tar'")
    positive = {
        "train.batch_size": cfg.train.batch_size, "train.kimg": cfg.train.kimg,
        "train.ema_kimg": cfg.train.ema_kimg, "train.checkpoint_kimg": cfg.train.checkpoint_kimg,
        "train.sample_kimg": cfg.train.sample_kimg, "train.log_every": cfg.train.log_every,
        "launch.nproc_per_node": cfg.launch.nproc_per_node, "model.z_dim": cfg.model.z_dim,
        "model.w_dim": cfg.model.w_dim, "model.channel_base": cfg.model.channel_base,
        "model.channel_max": cfg.model.channel_max, "optim.g_lr": cfg.optim.g_lr,
        "optim.d_lr": cfg.optim.d_lr, "loss.pl_batch_shrink": cfg.loss.pl_batch_shrink,
        "model.mbstd_group": cfg.model.mbstd_group, "data.shuffle_buffer": cfg.data.shuffle_buffer,
        "data.timeout": cfg.data.timeout,
        "model.mlp_hidden": cfg.model.mlp_hidden, "model.mlp_layers": cfg.model.mlp_layers,
        "model.class_embed_dim": cfg.model.class_embed_dim, "augment.ada_interval": cfg.augment.ada_interval,
        "augment.ada_kimg": cfg.augment.ada_kimg, "model.resnet_filters": cfg.model.resnet_filters,
        "model.patch_layers": cfg.model.patch_layers,
    }
    for key, value in positive.items():
        if not value > 0:
            _fail(key, f"got {value}; must be > 0")
    non_negative = {
        "data.num_classes": cfg.data.num_classes, "data.workers": cfg.data.workers, "data.retries": cfg.data.retries,
        "loss.r1_gamma": cfg.loss.r1_gamma, "loss.d_reg_interval": cfg.loss.d_reg_interval,
        "loss.g_reg_interval": cfg.loss.g_reg_interval, "loss.pl_weight": cfg.loss.pl_weight,
        "launch.max_restarts": cfg.launch.max_restarts, "train.threads": cfg.train.threads,
        "model.mapping_layers": cfg.model.mapping_layers, "loss.gp_weight": cfg.loss.gp_weight,
        "loss.cycle_weight": cfg.loss.cycle_weight, "loss.identity_weight": cfg.loss.identity_weight,
        "loss.pool_size": cfg.loss.pool_size, "model.resnet_blocks": cfg.model.resnet_blocks,
        "loss.ortho_weight": cfg.loss.ortho_weight, "loss.drift_weight": cfg.loss.drift_weight,
    }
    for key, value in non_negative.items():
        if value < 0:
            _fail(key, f"got {value}; must be >= 0")
    if not 0.0 <= cfg.loss.style_mixing <= 1.0:
        _fail("loss.style_mixing", f"got {cfg.loss.style_mixing}; must be a probability in [0, 1]")
    if not 0.0 < cfg.loss.pl_decay <= 1.0:
        _fail("loss.pl_decay", f"got {cfg.loss.pl_decay}; must be in (0, 1]")
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(cfg.optim, key) < 1.0:
            _fail(f"optim.{key}", f"got {getattr(cfg.optim, key)}; must be in [0, 1)")
    if cfg.model.channel_base < cfg.data.resolution:
        _fail("model.channel_base", f"got {cfg.model.channel_base}; channels at resolution r are channel_base // r, "
              f"so it must be at least data.resolution={cfg.data.resolution}")
    if cfg.train.keep_checkpoints < 2:
        _fail("train.keep_checkpoints", f"got {cfg.train.keep_checkpoints}; keep at least 2 so a damaged newest checkpoint has a fallback")
    if not 0 <= cfg.metrics.port <= 65535:
        _fail("metrics.port", f"got {cfg.metrics.port}; must be a TCP port (1-65535) or 0 to disable")
    if not 0 <= cfg.metrics.final_scrape_wait <= 3600:
        _fail("metrics.final_scrape_wait", f"got {cfg.metrics.final_scrape_wait}; must be seconds in [0, 3600] "
              "(the scrape interval or a little more; 0 stops the endpoint at once)")
    if not 0 <= cfg.launch.master_port <= 65535:
        _fail("launch.master_port", f"got {cfg.launch.master_port}; must be a TCP port or 0 for a free one")
    if cfg.model.conditional and cfg.data.num_classes == 1:
        _fail("data.num_classes", "is 1; a conditional model needs at least 2 classes (or set model.conditional=false)")
    _validate_eval(cfg)
    _validate_text(cfg)
    validate_superres(cfg, _fail)
    _validate_mix(cfg)
    _validate_image_to_image(cfg)
    return cfg


def _validate_image_to_image(cfg: Config) -> None:
    """Sections pix2pix and inpaint: sizes always, family rules when the family is chosen."""
    p, i = cfg.pix2pix, cfg.inpaint
    for key, value in {"pix2pix.filters": p.filters, "pix2pix.d_filters": p.d_filters,
                       "pix2pix.patch_layers": p.patch_layers, "pix2pix.canny_sigma": p.canny_sigma}.items():
        if not value > 0:
            _fail(key, f"got {value}; must be > 0")
    for key, value in {"pix2pix.l1_weight": p.l1_weight, "pix2pix.depth": p.depth, "inpaint.strokes": i.strokes,
                       "inpaint.boxes": i.boxes, "inpaint.hole_l1": i.hole_l1, "inpaint.known_l1": i.known_l1,
                       "inpaint.feature_matching": i.feature_matching}.items():
        if value < 0:
            _fail(key, f"got {value}; must be >= 0")
    if p.input_channels not in (0, 1, 3):
        _fail("pix2pix.input_channels", f"got {p.input_channels}; valid choices: 0 (from the transform), 1, 3")
    if p.downscale < 2:
        _fail("pix2pix.downscale", f"got {p.downscale}; the downscale transform needs a factor >= 2")
    if not 0 < i.max_hole <= 1:
        _fail("inpaint.max_hole", f"got {i.max_hole}; a share of the image in (0, 1]")
    if i.generator not in ("unet", "comod"):
        _fail("inpaint.generator", f"got {i.generator!r}; valid choices: unet, comod")
    if i.masks == "generate" and i.strokes + i.boxes == 0:
        _fail("inpaint.strokes", "and inpaint.boxes are both 0: generated masks need strokes or boxes")
    family = cfg.model.family
    if family not in ("pix2pix", "inpaint"):
        return
    if family == "inpaint" and cfg.c_dim:
        _fail("model.conditional", "is true; model.family=inpaint takes no labels: set model.conditional=false")
    if cfg.augment.kind != "none":
        _fail("augment.kind", f"is not supported with model.family={family} (D sees input and output as a pair); "
              "set augment.kind=none")
    if cfg.eval.every_kimg > 0:
        _fail("eval.every_kimg", f"is {cfg.eval.every_kimg} but model.family={family} maps images to images: FID of "
              "samples from latents does not apply; set eval.every_kimg=0 and run the family's gate on the export "
              "(docs/PAIRED.md)")
    depth = p.depth or cfg.data.resolution.bit_length() - 1
    if cfg.data.resolution % (2 ** depth):
        _fail("pix2pix.depth", f"got {p.depth}; data.resolution={cfg.data.resolution} must divide by 2**depth")
    if cfg.data.resolution >> p.patch_layers < 2:
        _fail("pix2pix.patch_layers", f"got {p.patch_layers}; data.resolution={cfg.data.resolution} is too small "
              f"for it: use at most {cfg.data.resolution.bit_length() - 2}")


def _validate_mix(cfg: Config) -> None:
    m = cfg.data.mix
    if not 0 <= m.fraction <= 1:
        _fail("data.mix.fraction", f"got {m.fraction}; the share of each batch from data.mix.urls lies in 0..1")
    if m.fraction > 0 and not m.urls:
        _fail("data.mix.urls", f"is empty but data.mix.fraction={m.fraction}; name the shards to mix in "
              "(e.g. a `hiresgan synth` output folder) or set data.mix.fraction=0")
    if m.urls and m.fraction == 0:
        _fail("data.mix.fraction", f"is 0, so data.mix.urls={m.urls!r} would never be read; set the share of "
              "each batch to take from it (e.g. 0.5) or clear data.mix.urls")


def _validate_text(cfg: Config) -> None:
    """Section text: the encoder name always, the family rules when model.family=text2img."""
    t = cfg.text
    if t.encoder != "builtin" and not (t.encoder.startswith("hf:") and len(t.encoder) > 3):
        _fail("text.encoder", f"got {t.encoder!r}; valid choices: builtin, hf:PATH (a local folder holding a "
              "CLIP or T5 text model and its tokenizer, saved with save_pretrained)")
    for key in ("max_words", "context", "dim", "layers", "heads", "attn_heads"):
        if not getattr(t, key) > 0:
            _fail(f"text.{key}", f"got {getattr(t, key)}; must be > 0")
    if t.dim % t.heads:
        _fail("text.heads", f"got {t.heads}; text.dim={t.dim} must divide by it")
    if t.mismatch_weight < 0:
        _fail("text.mismatch_weight", f"got {t.mismatch_weight}; must be >= 0")
    if t.attn_res != 0 and not (_is_power_of_two(t.attn_res) and t.attn_res <= cfg.data.resolution):
        _fail("text.attn_res", f"got {t.attn_res}; must be 0 (no cross-attention) or a power of two in "
              f"4..data.resolution={cfg.data.resolution}")
    if cfg.model.family == "text2img" and cfg.c_dim:
        _fail("data.num_classes", f"is {cfg.data.num_classes}; model.family=text2img is conditioned on captions, "
              "not class labels: set data.num_classes=0")


def _validate_eval(cfg: Config) -> None:
    """The eval section: names and counts always; data shape and weights only when it is on,
    so a config that never evaluates needs no weights file."""
    e = cfg.eval
    if e.every_kimg < 0:
        _fail("eval.every_kimg", f"got {e.every_kimg}; must be >= 0 (0 turns evaluation during training off)")
    names = [m.strip() for m in e.metrics.split(",") if m.strip()]
    bad = [m for m in names if m not in EVAL_METRICS]
    if bad or not names:
        _fail("eval.metrics", f"got {e.metrics!r}; a comma-separated subset of the valid choices: {', '.join(EVAL_METRICS)}")
    for key in ("num_fake", "num_real"):
        if getattr(e, key) < 2:
            _fail(f"eval.{key}", f"got {getattr(e, key)}; the metrics need at least 2 images")
    if e.features not in ("digits", "inception"):
        _fail("eval.features", f"got {e.features!r}; valid choices: digits, inception")
    if e.every_kimg == 0:
        return
    if e.features == "digits" and (cfg.data.channels, cfg.data.resolution) != (1, 32):
        _fail("eval.features", f"digits reads 1x32x32 images (the embedded digits) but the data is "
              f"{cfg.data.channels}x{cfg.data.resolution}x{cfg.data.resolution}; use eval.features=inception")
    if e.features == "inception":
        if not e.inception_weights:
            _fail("eval.inception_weights", "is empty but eval.features=inception needs it: a safetensors file made by "
                  "`python -m trainer.evaluation.inception convert` (docs/EVALUATION.md)")
        weights = Path(e.inception_weights).expanduser()
        if not weights.is_file():
            _fail("eval.inception_weights", f"'{weights}' does not exist")
        sha = e.inception_sha256.lower()
        if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
            _fail("eval.inception_sha256", f"got {e.inception_sha256!r}; must be the 64-hex-digit SHA-256 of "
                  "eval.inception_weights (printed by the converter)")
        digest = hashlib.sha256()
        with open(weights, "rb") as f:  # once per process start (~0.2 s for Inception's 95 MB)
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != sha:
            _fail("eval.inception_sha256", f"'{weights}' has SHA-256 {digest.hexdigest()}, not {sha}; "
                  "is it the file you converted?")


def _structured_error(source: str, exc: OmegaConfBaseException) -> ConfigError:
    key = getattr(exc, "full_key", None) or "?"
    reason = str(exc).splitlines()[0]
    if "Key '" in reason and "not in" in reason:
        section = key.rsplit(".", 1)[0] if "." in key else ""
        node = Config() if not section else getattr(Config(), section, None)
        valid = sorted(f.name for f in dataclasses.fields(node)) if dataclasses.is_dataclass(node) else []
        hint = f"; valid keys{' under ' + section if section else ''}: {', '.join(valid)}" if valid else ""
        return ConfigError(f"{source}: unknown config key '{key}'{hint}")
    return ConfigError(f"{source}: config key '{key}': {reason}")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load a YAML file (or only defaults when path is None), apply dot-list overrides, validate."""
    schema = OmegaConf.structured(Config)
    merged = schema
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file '{path}' does not exist; pass a YAML file such as configs/digits.yaml")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        except OmegaConfBaseException as exc:
            raise _structured_error(str(path), exc) from None
        except Exception as exc:  # YAML syntax errors
            raise ConfigError(f"{path}: cannot parse YAML: {exc}") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value (e.g. train.kimg=50)")
    try:
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides or [])))
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise _structured_error("command-line override", exc) from None
    assert isinstance(cfg, Config)
    return validate(cfg)


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from `to_dict` output (e.g. a run's config.json), validating again."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(data))
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise _structured_error("saved config", exc) from None
    return validate(cfg)


def save_config(cfg: Config, run_dir: Path) -> None:
    """Write the resolved config as YAML (for people) and JSON (for programs), atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = to_dict(cfg)
    for name, text in (("config.yaml", OmegaConf.to_yaml(OmegaConf.create(data))),
                       ("config.json", json.dumps(data, indent=2))):
        tmp = run_dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(run_dir / name)


def load_run_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' has no config.json; is it a hiresgan run directory?")
    return from_dict(json.loads(path.read_text()))

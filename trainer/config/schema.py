"""The typed configuration schema: one dataclass per section, a comment on every field, and the
choices each string key accepts (`CHOICES`). Loading is `trainer.config.load_config`; the checks
that run on a loaded config are `trainer.config.checks`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from trainer.superres.settings import SuperResConfig


class ConfigError(ValueError):
    """A configuration problem, with a message that names the key and how to fix it."""


@dataclass
class RunConfig:
    name: str = "run"  # run directory name: outputs go to <out_dir>/<name>/
    out_dir: str = "runs"  # parent folder of run directories
    seed: int = 0  # global seed; per-rank streams derive from it
    resume: str = (
        "auto"  # "auto": continue the run dir's latest complete checkpoint; "none"; or a run dir / checkpoint path
    )


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
    mlp_dropout: float = 0.0  # family mlp: dropout after each hidden layer of D (the GAN paper used it); [0, 1)
    mlp_batch_norm: bool = False  # family mlp: batch norm after each hidden layer of G, as in DCGAN's G
    mlp_minibatch_std: bool = False  # family mlp: D sees the feature spread across model.mbstd_group images
    class_embed_dim: int = 32  # family biggan: size of the shared class embedding fed to G's batch norms
    attention_res: int = 16  # family biggan: resolution of the self-attention block in G and D (0: none)
    resnet_filters: int = 64  # family cyclegan: filters of the first G conv and of the first PatchGAN conv
    resnet_blocks: int = 6  # family cyclegan: residual blocks per generator (the paper: 6 at 128px, 9 at 256px)
    patch_layers: int = 3  # family cyclegan: stride-2 convs in each PatchGAN discriminator


@dataclass
class LossConfig:
    kind: str = "logistic"  # adversarial loss: logistic (non-saturating), hinge, wgan_gp or lsgan (every family)
    gp_weight: float = 10.0  # WGAN-GP gradient-penalty weight (loss.kind=wgan_gp only)
    drift_weight: float = 0.0  # weight of E[D(real)^2] in D's loss (ProGAN's epsilon_drift, 0.001; 0: off)
    cycle_weight: float = 10.0  # family cyclegan: weight of |G_ba(G_ab(a)) - a|_1 + |G_ab(G_ba(b)) - b|_1
    identity_weight: float = 5.0  # family cyclegan: weight of |G_ab(b) - b|_1 + |G_ba(a) - a|_1 (0: off)
    pool_size: int = 50  # family cyclegan: generated images kept per domain for D (0: no pool)
    n_critic: int = (
        1  # D (critic) steps per G step: G trains every n-th step (WGAN-GP paper: 5); dcgan, mlp, biggan, progan
    )
    ortho_weight: float = (
        0.0  # BigGAN orthogonal regularization of G's weights (0: off; BigGAN uses 1e-4); not stylegan2
    )
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
    tensorboard: bool = (
        False  # also write TensorBoard events (every catalog series + sample grids) to RUN/tensorboard (rank 0)
    )


@dataclass
class EvalConfig:
    """Evaluation inside training (trainer/evaluation/periodic.py); docs/EVALUATION.md."""

    every_kimg: float = 0.0  # evaluate G_ema on all ranks every N kimg and at the end (0: off)
    metrics: str = "fid"  # comma-separated subset of fid,kid,pr,is,alignment (alignment: text2img only)
    num_fake: int = 1000  # generated images (seeds 0..N-1, as `hiresgan eval`); published FIDs use 50000
    num_real: int = 50000  # real images at most: the first N in shard order, features cached
    data: str = ""  # real shards, a local brace pattern ("": data.urls)
    features: str = "digits"  # feature network: digits (1x32x32 images only) or inception
    inception_weights: str = ""  # features=inception: safetensors from `python -m trainer.evaluation.inception convert`
    inception_sha256: str = ""  # features=inception: the expected SHA-256 of inception_weights
    cache: str = "~/.cache/hiresgan/eval"  # folder for cached real features ("": no cache)
    alignment_samples: int = 1  # metrics=alignment: samples per colour-digit prompt (560 prompts, seeds 0..N-1)


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

    masks: str = (
        "generate"  # "generate": free-form strokes plus boxes per sample; or a folder of mask PNGs (white = missing)
    )
    strokes: int = 4  # generate: at most this many free-form strokes per mask
    boxes: int = 2  # generate: at most this many boxes per mask
    max_hole: float = 0.5  # generate: largest share of the image a mask may cover (redrawn above it)
    hole_l1: float = 1.0  # weight of the L1 distance inside the hole (0: adversarial only there)
    known_l1: float = 1.0  # weight of the L1 distance on the known pixels of G's raw output
    feature_matching: float = 0.0  # weight of D-feature matching between real and composite (0: off)
    prefill: bool = True  # G corrects a smooth classical fill of the hole rather than starting from gray
    prefill_equation: str = "biharmonic"  # that fill: "biharmonic" (value and slope continue) or "harmonic"
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
    # the wrong captions (trainer/text/negatives.py): "roll" (another sample's caption, GAN-INT-CLS) or
    # "word_swap" (the caption with one word taken from its most similar batch caption: every attribute tested),
    # "word_swap_hard" (of those one-word swaps, the one D scores highest: where D is still wrong)
    mismatch: str = "roll"
    # contrastive image-caption matching (trainer/text/contrastive.py): weight of the B x B loss on D's
    # projection features, D on real pairs and G on its fakes (0: off)
    contrastive_weight: float = 0.0
    # its softmax temperature over cosine similarities (XMC-GAN's 0.1: logits within +-10, enough to
    # separate a batch of 16; fixed, so D cannot shrink the loss by inflating a learned scale)
    contrastive_temperature: float = 0.1
    # its negatives (trainer/text/swap_pool.py): "batch" (the other captions of the batch) or "word_swap"
    # (also, per image, the text.contrastive_hard_negatives one-word swaps of its caption that D finds
    # closest to it: swaps colour cannot tell apart, so D has to read the digit)
    contrastive_negatives: str = "batch"
    contrastive_hard_negatives: int = 3  # K of word_swap: extra wrong captions per image
    # separate caption-matching critic (trainer/text/match_critic.py): a second, smaller TextDiscriminator
    # inside D's engine, trained on real images only (own caption vs a one-word swap, the digit word
    # preferred); G's loss adds this weight x softplus(-critic(fake, its caption)) (0: off, no critic built)
    match_critic_weight: float = 0.0
    match_critic_channel_base: int = 512  # the critic's model.channel_base (the caption probe's fast size)
    match_critic_channel_max: int = 32  # the critic's model.channel_max
    # pixels of random translation (per sample, in x and y, zero fill) of every image the critic scores:
    # real ones in D's phase, fakes in G's phase (0: off); needs text.match_critic_weight > 0
    match_critic_augment: int = 0
    # G's use of the critic: "absolute" (softplus(-critic(fake, its caption))) or "relative"
    # (softplus(critic(fake, swap) - critic(fake, its caption)), the swap being the critic's own one-word,
    # digit-preferring negative): an absolute score can be raised for every caption at once, the margin
    # only pays for evidence that tells the asked digit from another (logs G/match_critic_acc too);
    # relative needs text.match_critic_weight > 0
    match_critic_objective: str = "absolute"


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


# Metrics comparing generated to real image features (eval.metrics and `hiresgan eval --metrics`).
FEATURE_METRICS = ("fid", "kid", "pr", "is")
# Metric names of eval.metrics: alignment (text2img on the colour digits) reads attributes back
# from G's samples (trainer/evaluation/text_alignment.py), needing no real images or features.
EVAL_METRICS = FEATURE_METRICS + ("alignment",)

# Fields whose value must come from a fixed set.
CHOICES = {
    "data.prepare": ("none", "digits", "photos", "edges2digits", "edges2digits_unpaired", "text2img_digits"),
    "data.on_error": ("skip", "fail"),
    "train.precision": ("fp32", "bf16"),
    "train.zero_stage": (0, 1, 2),
    "launch.backend": ("auto", "gloo", "nccl"),
    "loss.kind": ("logistic", "hinge", "wgan_gp", "lsgan"),
    "augment.kind": ("none", "diffaugment", "ada"),
    "pix2pix.transform": ("none", "edges", "gray", "downscale"),
    "text.mismatch": ("roll", "word_swap", "word_swap_hard"),
    "text.contrastive_negatives": ("batch", "word_swap"),
}

# Keys that only the StyleGAN2 family reads: other families refuse non-zero values rather than
# ignore them, so a config never claims a regularizer that is not applied.
STYLEGAN2_ONLY = ("loss.pl_weight", "loss.style_mixing")

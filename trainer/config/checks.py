"""Validation of a loaded config: every check names the offending key, the value and how to fix it,
and runs before any process starts."""

from __future__ import annotations

import hashlib
from pathlib import Path

from trainer.config.schema import CHOICES, EVAL_METRICS, FEATURE_METRICS, STYLEGAN2_ONLY, Config, ConfigError
from trainer.superres.settings import validate_superres
from trainer.text.checks import validate_alignment, validate_text


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
                _fail(
                    key,
                    "ZeRO stage 3 is not supported: the two-engine GAN (G and D) breaks "
                    "under ZeRO-3 partitioned parameters (DeepSpeed issues #4923, #700); use 0, 1 or 2",
                )
            _fail(key, f"got {value!r}; valid choices: {', '.join(map(str, allowed))}")
    if cfg.model.family not in FAMILIES:
        _fail("model.family", f"got {cfg.model.family!r}; valid choices: {', '.join(sorted(FAMILIES))}")
    if cfg.model.family not in ("stylegan2", "text2img"):  # text2img runs StyleGAN2's phases
        for key in STYLEGAN2_ONLY:
            section, name = key.split(".")
            if getattr(getattr(cfg, section), name) != 0:
                _fail(
                    key,
                    f"is {getattr(getattr(cfg, section), name)} but only model.family=stylegan2 uses it; "
                    f"set {key}=0 for model.family={cfg.model.family}",
                )
    if cfg.loss.n_critic < 1:
        _fail("loss.n_critic", f"got {cfg.loss.n_critic}; the critic steps per G step must be at least 1")
    if cfg.loss.n_critic != 1 and cfg.model.family not in ("dcgan", "mlp", "biggan", "progan"):
        _fail(
            "loss.n_critic",
            f"is applied by the dcgan, mlp, biggan and progan recipes, not model.family="
            f"{cfg.model.family}; set loss.n_critic=1",
        )
    if cfg.model.family in ("stylegan2", "text2img") and cfg.loss.ortho_weight != 0:
        _fail(
            "loss.ortho_weight",
            f"orthogonal regularization is not applied by model.family={cfg.model.family}; set it to 0 "
            "or pick model.family=biggan, dcgan or mlp",
        )
    a = cfg.model.attention_res
    if a != 0 and not (_is_power_of_two(a) and 8 <= a <= cfg.data.resolution):
        _fail(
            "model.attention_res",
            f"got {a}; must be 0 (none) or a power of two in 8..data.resolution={cfg.data.resolution}",
        )
    ops = [op.strip() for op in cfg.augment.policy.split(",") if op.strip()]
    bad_ops = [op for op in ops if op not in ("color", "translation", "cutout")]
    if bad_ops or (cfg.augment.kind == "diffaugment" and not ops):
        _fail("augment.policy", f"got {cfg.augment.policy!r}; a comma-separated list of: color, translation, cutout")
    if not 0.0 <= cfg.augment.ada_p <= 1.0:
        _fail("augment.ada_p", f"got {cfg.augment.ada_p}; must be a probability in [0, 1]")
    if not -1.0 < cfg.augment.ada_target < 1.0:
        _fail(
            "augment.ada_target", f"got {cfg.augment.ada_target}; r_t lies in [-1, 1], so the target must be in (-1, 1)"
        )
    if cfg.model.family == "cyclegan":
        if not cfg.data.urls_b:
            _fail(
                "data.urls_b",
                "is empty; model.family=cyclegan translates between data.urls (domain A) and "
                "data.urls_b (domain B): set it to domain B's shard pattern",
            )
        if cfg.c_dim:
            _fail(
                "model.conditional",
                "is true; model.family=cyclegan translates images and takes no labels: set model.conditional=false",
            )
        if cfg.augment.kind != "none" or cfg.loss.r1_gamma > 0:
            _fail(
                "augment.kind" if cfg.augment.kind != "none" else "loss.r1_gamma",
                "is not supported with model.family=cyclegan; set augment.kind=none and loss.r1_gamma=0",
            )
        if cfg.data.resolution < 16:
            _fail("data.resolution", f"got {cfg.data.resolution}; model.family=cyclegan needs at least 16")
    start = cfg.progressive.start_resolution
    if not (_is_power_of_two(start) and start <= cfg.data.resolution):
        _fail(
            "progressive.start_resolution",
            f"got {start}; must be a power of two in 4..data.resolution={cfg.data.resolution}",
        )
    if not cfg.progressive.stable_kimg > 0:
        _fail("progressive.stable_kimg", f"got {cfg.progressive.stable_kimg}; must be > 0")
    if cfg.progressive.fade_kimg < 0:
        _fail("progressive.fade_kimg", f"got {cfg.progressive.fade_kimg}; must be >= 0")
    if cfg.loss.kind == "wgan_gp" and not cfg.loss.gp_weight > 0:
        _fail(
            "loss.gp_weight", f"got {cfg.loss.gp_weight}; loss.kind=wgan_gp needs a positive penalty weight (e.g. 10)"
        )
    if not _is_power_of_two(cfg.data.resolution):
        _fail("data.resolution", f"got {cfg.data.resolution}; must be a power of two >= 4 (e.g. 32, 256, 1024)")
    if cfg.data.channels not in (1, 3):
        _fail("data.channels", f"got {cfg.data.channels}; valid choices: 1, 3")
    if not cfg.data.urls:
        _fail(
            "data.urls",
            "is empty; set it to your shard pattern, e.g. data.urls='/data/ffhq/shard-{000000..000099}.tar'",
        )
    positive = {
        "train.batch_size": cfg.train.batch_size,
        "train.kimg": cfg.train.kimg,
        "train.ema_kimg": cfg.train.ema_kimg,
        "train.checkpoint_kimg": cfg.train.checkpoint_kimg,
        "train.sample_kimg": cfg.train.sample_kimg,
        "train.log_every": cfg.train.log_every,
        "launch.nproc_per_node": cfg.launch.nproc_per_node,
        "model.z_dim": cfg.model.z_dim,
        "model.w_dim": cfg.model.w_dim,
        "model.channel_base": cfg.model.channel_base,
        "model.channel_max": cfg.model.channel_max,
        "optim.g_lr": cfg.optim.g_lr,
        "optim.d_lr": cfg.optim.d_lr,
        "loss.pl_batch_shrink": cfg.loss.pl_batch_shrink,
        "model.mbstd_group": cfg.model.mbstd_group,
        "data.shuffle_buffer": cfg.data.shuffle_buffer,
        "data.timeout": cfg.data.timeout,
        "model.mlp_hidden": cfg.model.mlp_hidden,
        "model.mlp_layers": cfg.model.mlp_layers,
        "model.class_embed_dim": cfg.model.class_embed_dim,
        "augment.ada_interval": cfg.augment.ada_interval,
        "augment.ada_kimg": cfg.augment.ada_kimg,
        "model.resnet_filters": cfg.model.resnet_filters,
        "model.patch_layers": cfg.model.patch_layers,
    }
    for key, value in positive.items():
        if not value > 0:
            _fail(key, f"got {value}; must be > 0")
    non_negative = {
        "data.num_classes": cfg.data.num_classes,
        "data.workers": cfg.data.workers,
        "data.retries": cfg.data.retries,
        "loss.r1_gamma": cfg.loss.r1_gamma,
        "loss.d_reg_interval": cfg.loss.d_reg_interval,
        "loss.g_reg_interval": cfg.loss.g_reg_interval,
        "loss.pl_weight": cfg.loss.pl_weight,
        "launch.max_restarts": cfg.launch.max_restarts,
        "train.threads": cfg.train.threads,
        "model.mapping_layers": cfg.model.mapping_layers,
        "loss.gp_weight": cfg.loss.gp_weight,
        "loss.cycle_weight": cfg.loss.cycle_weight,
        "loss.identity_weight": cfg.loss.identity_weight,
        "loss.pool_size": cfg.loss.pool_size,
        "model.resnet_blocks": cfg.model.resnet_blocks,
        "loss.ortho_weight": cfg.loss.ortho_weight,
        "loss.drift_weight": cfg.loss.drift_weight,
    }
    for key, value in non_negative.items():
        if value < 0:
            _fail(key, f"got {value}; must be >= 0")
    if not 0.0 <= cfg.model.mlp_dropout < 1.0:
        _fail("model.mlp_dropout", f"got {cfg.model.mlp_dropout}; must be in [0, 1) (0 turns dropout off)")
    if not 0.0 <= cfg.loss.style_mixing <= 1.0:
        _fail("loss.style_mixing", f"got {cfg.loss.style_mixing}; must be a probability in [0, 1]")
    if not 0.0 < cfg.loss.pl_decay <= 1.0:
        _fail("loss.pl_decay", f"got {cfg.loss.pl_decay}; must be in (0, 1]")
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(cfg.optim, key) < 1.0:
            _fail(f"optim.{key}", f"got {getattr(cfg.optim, key)}; must be in [0, 1)")
    if cfg.model.channel_base < cfg.data.resolution:
        _fail(
            "model.channel_base",
            f"got {cfg.model.channel_base}; channels at resolution r are channel_base // r, "
            f"so it must be at least data.resolution={cfg.data.resolution}",
        )
    if cfg.train.keep_checkpoints < 2:
        _fail(
            "train.keep_checkpoints",
            f"got {cfg.train.keep_checkpoints}; keep at least 2 so a damaged newest checkpoint has a fallback",
        )
    if not 0 <= cfg.metrics.port <= 65535:
        _fail("metrics.port", f"got {cfg.metrics.port}; must be a TCP port (1-65535) or 0 to disable")
    if not 0 <= cfg.metrics.final_scrape_wait <= 3600:
        _fail(
            "metrics.final_scrape_wait",
            f"got {cfg.metrics.final_scrape_wait}; must be seconds in [0, 3600] "
            "(the scrape interval or a little more; 0 stops the endpoint at once)",
        )
    if not 0 <= cfg.launch.master_port <= 65535:
        _fail("launch.master_port", f"got {cfg.launch.master_port}; must be a TCP port or 0 for a free one")
    if cfg.model.conditional and cfg.data.num_classes == 1:
        _fail("data.num_classes", "is 1; a conditional model needs at least 2 classes (or set model.conditional=false)")
    _validate_eval(cfg)
    validate_text(cfg, _fail)
    validate_superres(cfg, _fail)
    _validate_mix(cfg)
    _validate_image_to_image(cfg)
    return cfg


def _validate_image_to_image(cfg: Config) -> None:
    """Sections pix2pix and inpaint: sizes always, family rules when the family is chosen."""
    p, i = cfg.pix2pix, cfg.inpaint
    for key, value in {
        "pix2pix.filters": p.filters,
        "pix2pix.d_filters": p.d_filters,
        "pix2pix.patch_layers": p.patch_layers,
        "pix2pix.canny_sigma": p.canny_sigma,
    }.items():
        if not value > 0:
            _fail(key, f"got {value}; must be > 0")
    for key, value in {
        "pix2pix.l1_weight": p.l1_weight,
        "pix2pix.depth": p.depth,
        "inpaint.strokes": i.strokes,
        "inpaint.boxes": i.boxes,
        "inpaint.hole_l1": i.hole_l1,
        "inpaint.known_l1": i.known_l1,
        "inpaint.feature_matching": i.feature_matching,
    }.items():
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
    if i.prefill_equation not in ("harmonic", "biharmonic"):
        _fail("inpaint.prefill_equation", f"got {i.prefill_equation!r}; valid choices: harmonic, biharmonic")
    if i.masks == "generate" and i.strokes + i.boxes == 0:
        _fail("inpaint.strokes", "and inpaint.boxes are both 0: generated masks need strokes or boxes")
    family = cfg.model.family
    if family not in ("pix2pix", "inpaint"):
        return
    if family == "inpaint" and cfg.c_dim:
        _fail("model.conditional", "is true; model.family=inpaint takes no labels: set model.conditional=false")
    if cfg.augment.kind != "none":
        _fail(
            "augment.kind",
            f"is not supported with model.family={family} (D sees input and output as a pair); set augment.kind=none",
        )
    if cfg.eval.every_kimg > 0:
        _fail(
            "eval.every_kimg",
            f"is {cfg.eval.every_kimg} but model.family={family} maps images to images: FID of "
            "samples from latents does not apply; set eval.every_kimg=0 and run the family's gate on the export "
            "(docs/PAIRED.md)",
        )
    depth = p.depth or cfg.data.resolution.bit_length() - 1
    if cfg.data.resolution % (2**depth):
        _fail("pix2pix.depth", f"got {p.depth}; data.resolution={cfg.data.resolution} must divide by 2**depth")
    if cfg.data.resolution >> p.patch_layers < 2:
        _fail(
            "pix2pix.patch_layers",
            f"got {p.patch_layers}; data.resolution={cfg.data.resolution} is too small "
            f"for it: use at most {cfg.data.resolution.bit_length() - 2}",
        )


def _validate_mix(cfg: Config) -> None:
    m = cfg.data.mix
    if not 0 <= m.fraction <= 1:
        _fail("data.mix.fraction", f"got {m.fraction}; the share of each batch from data.mix.urls lies in 0..1")
    if m.fraction > 0 and not m.urls:
        _fail(
            "data.mix.urls",
            f"is empty but data.mix.fraction={m.fraction}; name the shards to mix in "
            "(e.g. a `hiresgan synth` output folder) or set data.mix.fraction=0",
        )
    if m.urls and m.fraction == 0:
        _fail(
            "data.mix.fraction",
            f"is 0, so data.mix.urls={m.urls!r} would never be read; set the share of "
            "each batch to take from it (e.g. 0.5) or clear data.mix.urls",
        )


def _validate_eval(cfg: Config) -> None:
    """The eval section: names and counts always; data shape and weights only when it is on,
    so a config that never evaluates needs no weights file."""
    e = cfg.eval
    if e.every_kimg < 0:
        _fail("eval.every_kimg", f"got {e.every_kimg}; must be >= 0 (0 turns evaluation during training off)")
    names = [m.strip() for m in e.metrics.split(",") if m.strip()]
    bad = [m for m in names if m not in EVAL_METRICS]
    if bad or not names:
        _fail(
            "eval.metrics",
            f"got {e.metrics!r}; a comma-separated subset of the valid choices: {', '.join(EVAL_METRICS)}",
        )
    for key in ("num_fake", "num_real"):
        if getattr(e, key) < 2:
            _fail(f"eval.{key}", f"got {getattr(e, key)}; the metrics need at least 2 images")
    if e.features not in ("digits", "inception"):
        _fail("eval.features", f"got {e.features!r}; valid choices: digits, inception")
    if "alignment" in names:
        validate_alignment(cfg, _fail)
    # Only the feature metrics run the feature network: alignment alone needs neither a network that
    # reads the data's shape nor weights.
    if e.every_kimg == 0 or not any(m in FEATURE_METRICS for m in names):
        return
    if e.features == "digits" and (cfg.data.channels, cfg.data.resolution) != (1, 32):
        _fail(
            "eval.features",
            f"digits reads 1x32x32 images (the embedded digits) but the data is "
            f"{cfg.data.channels}x{cfg.data.resolution}x{cfg.data.resolution}; use eval.features=inception",
        )
    if e.features == "inception":
        if not e.inception_weights:
            _fail(
                "eval.inception_weights",
                "is empty but eval.features=inception needs it: a safetensors file made by "
                "`python -m trainer.evaluation.inception convert` (docs/EVALUATION.md)",
            )
        weights = Path(e.inception_weights).expanduser()
        if not weights.is_file():
            _fail("eval.inception_weights", f"'{weights}' does not exist")
        sha = e.inception_sha256.lower()
        if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
            _fail(
                "eval.inception_sha256",
                f"got {e.inception_sha256!r}; must be the 64-hex-digit SHA-256 of "
                "eval.inception_weights (printed by the converter)",
            )
        digest = hashlib.sha256()
        with open(weights, "rb") as f:  # once per process start (~0.2 s for Inception's 95 MB)
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != sha:
            _fail(
                "eval.inception_sha256",
                f"'{weights}' has SHA-256 {digest.hexdigest()}, not {sha}; is it the file you converted?",
            )

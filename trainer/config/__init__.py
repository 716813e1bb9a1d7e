"""The configuration: load YAML, merge dot-list overrides, validate, save.

The schema (one dataclass per section, a comment on every field) is `trainer.config.schema`; the
checks that name the offending key and the valid choices are `trainer.config.checks`; both run
before any process starts (the launcher calls `load_config`). Every public name is importable
from `trainer.config`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trainer.config.checks import validate
from trainer.config.schema import (
    CHOICES,
    EVAL_METRICS,
    FEATURE_METRICS,
    AugmentConfig,
    Config,
    ConfigError,
    DataConfig,
    EvalConfig,
    InpaintConfig,
    LaunchConfig,
    LossConfig,
    MetricsConfig,
    MixConfig,
    ModelConfig,
    OptimConfig,
    Pix2PixConfig,
    ProgressiveConfig,
    RunConfig,
    TextConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig",
    "CHOICES",
    "Config",
    "ConfigError",
    "DataConfig",
    "EVAL_METRICS",
    "EvalConfig",
    "FEATURE_METRICS",
    "InpaintConfig",
    "LaunchConfig",
    "LossConfig",
    "MetricsConfig",
    "MixConfig",
    "ModelConfig",
    "OptimConfig",
    "Pix2PixConfig",
    "ProgressiveConfig",
    "RunConfig",
    "TextConfig",
    "TrainConfig",
    "validate",
    "load_config",
    "to_dict",
    "from_dict",
    "save_config",
    "load_run_config",
]


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
    for name, text in (
        ("config.yaml", OmegaConf.to_yaml(OmegaConf.create(data))),
        ("config.json", json.dumps(data, indent=2)),
    ):
        tmp = run_dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(run_dir / name)


def load_run_config(run_dir: Path) -> Config:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' has no config.json; is it a hiresgan run directory?")
    return from_dict(json.loads(path.read_text()))

"""The config schema: every shipped YAML validates, and bad input names the key."""

from pathlib import Path

import pytest

from trainer.config import ConfigError, from_dict, load_config, load_run_config, save_config, to_dict

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"digits.yaml", "ffhq256.yaml", "ffhq1024.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.data.urls
    assert from_dict(to_dict(cfg)) == cfg


def test_dot_list_overrides_apply():
    cfg = load_config(ROOT / "configs/digits.yaml", ["model.channel_base=4096", "train.kimg=50"])
    assert cfg.model.channel_base == 4096 and cfg.train.kimg == 50


@pytest.mark.parametrize(
    "override, words",
    [
        (["model.chanel_base=4096"], ["model.chanel_base", "channel_base"]),  # typo: names valid keys
        (["trian.kimg=5"], ["trian", "train"]),
        (["train.batch_size=many"], ["train.batch_size"]),
        (["train.precision=fp16"], ["train.precision", "fp32", "bf16"]),
        (["train.zero_stage=3"], ["train.zero_stage", "ZeRO stage 3"]),
        (["data.resolution=48"], ["data.resolution", "power of two"]),
        (["train.batch_size=0"], ["train.batch_size", "> 0"]),
        (["loss.style_mixing=1.5"], ["loss.style_mixing"]),
        (["model.family=vae"], ["model.family", "stylegan2"]),
        (["train.keep_checkpoints=1"], ["train.keep_checkpoints"]),
        (["train.kimg"], ["train.kimg", "key=value"]),
        (["metrics.final_scrape_wait=-1"], ["metrics.final_scrape_wait", "[0, 3600]"]),
    ],
)
def test_bad_values_name_the_key(override, words):
    with pytest.raises(ConfigError) as info:
        load_config(ROOT / "configs/digits.yaml", override)
    for word in words:
        assert word in str(info.value)


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  kimgs: 5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*train.kimgs.*valid keys under train"):
        load_config(bad)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_round_trips_through_the_run_dir(tmp_path):
    cfg = load_config(ROOT / "configs/digits.yaml", ["train.kimg=3"])
    save_config(cfg, tmp_path)
    assert (tmp_path / "config.yaml").is_file()
    assert load_run_config(tmp_path) == cfg

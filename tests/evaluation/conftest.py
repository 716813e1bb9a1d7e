import pytest
from evalkit import tiny_generator


@pytest.fixture
def tiny_export(tmp_path):
    from trainer.export import export_generator

    out = tmp_path / "export"
    export_generator(tiny_generator(), out, class_names=[str(i) for i in range(10)])
    return out


@pytest.fixture
def tiny_run(tmp_path, digit_shards):
    """A run directory with the resolved config of a tiny digits model."""
    from pathlib import Path

    from trainer.config import load_config, save_config

    _, pattern = digit_shards
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(
        root / "configs" / "digits.yaml",
        [
            "model.channel_base=256",
            "model.channel_max=16",
            "model.z_dim=16",
            "model.w_dim=16",
            "model.mapping_layers=1",
            f"data.urls={pattern}",
            f"run.out_dir={tmp_path}",
            "run.name=r",
        ],
    )
    save_config(cfg, cfg.run_dir)
    return cfg.run_dir

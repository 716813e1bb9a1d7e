"""`make bench-data` end to end at a toy size: real shards, a real HTTP server, JSON out."""

import json

from trainer.data.bench import main


def test_bench_data_measures_every_source_and_saves_json(tmp_path, capsys):
    out = tmp_path / "data.json"
    assert main(["--resolutions", "16", "--images", "16", "--workers", "0", "--sources", "local", "http",
                 "--shards", "2", "--batch", "4", "--seconds", "0.05", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {"date", "device", "cpu_count", "load_average_before", "command"} <= set(result)
    rows = result["results"]
    assert [(r["source"], r["workers"]) for r in rows] == [("local", 0), ("http", 0)]
    assert all(r["images_per_second"] > 0 and r["raw_decode_images_per_second"] > 0 and r["repeats"] == 1
               for r in rows)
    assert "saved to" in capsys.readouterr().out


def test_bench_data_layers_report_each_loader_layer(tmp_path):
    out = tmp_path / "layers.json"
    assert main(["--layers", "--resolutions", "16", "--images", "16", "--shards", "2", "--batch", "4",
                 "--seconds", "0.02", "--repeats", "1", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert list(row["layer_images_per_second"]) == ["raw PIL loop", "decode_image", "+ tar shards",
                                                    "+ shuffle stream", "+ batches (loader)"]
    assert all(rate > 0 for rate in row["layer_images_per_second"].values())

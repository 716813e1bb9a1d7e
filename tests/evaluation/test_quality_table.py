"""make quality-all's table: one row per gate with result, wall time and the report's figures."""

import json

import pytest

from trainer.evaluation.quality_table import main, table


def test_table_reads_each_gates_report_and_fails_when_one_failed(tmp_path, capsys):
    (tmp_path / "quality-mlp").mkdir()
    (tmp_path / "quality-mlp" / "eval-digits.json").write_text(
        json.dumps({"class_accuracy": 0.931, "digits_covered": 10, "accuracy_per_class": [0.9] * 10})
    )
    (tmp_path / "quality-text2img").mkdir()
    (tmp_path / "quality-text2img" / "eval-text2img.json").write_text(
        json.dumps({"seen": {"all": 0.107}, "withheld": {"all": 0.056}})
    )
    results = tmp_path / "quality-all.tsv"
    results.write_text("mlp\tpass\t125\nbiggan\tfail\t3700\n")
    text, passed = table(results)
    assert not passed
    assert "| `make quality-mlp` | pass | 2 min 05 s | class_accuracy 0.931, digits_covered 10 |" in text
    assert "| `make quality-biggan` | fail | 61 min 40 s | (no report) |" in text
    results.write_text("text2img\tfail\t1800\n")
    assert "seen.all 0.107, withheld.all 0.056" in table(results)[0]
    results.write_text("mlp\tpass\t125\nbiggan\tfail\t3700\n")
    assert main([str(results)]) == 1 and "quality-mlp" in capsys.readouterr().out
    results.write_text("mlp\tpass\t125\n")
    assert main([str(results)]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing.tsv")])
    assert exit_info.value.code == 2 and "missing.tsv: no such file" in capsys.readouterr().err

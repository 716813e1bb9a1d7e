"""--prompt / --prompts handling without a trained model: files, empty lines, flags, family."""

import json

import pytest

from trainer.sampling.prompts import PromptError, export_tokenizer, prompt_flags, read_prompts


def test_prompts_file_lines_and_errors(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a red 7\nthe digit two\n\n")
    assert read_prompts(path) == ["a red 7", "the digit two"]  # trailing blank lines are not prompts
    path.write_text("a red 7\n\nthe digit two\n")
    with pytest.raises(PromptError, match=r"line\(s\) 1 \(from 0\) are empty"):
        read_prompts(path)
    with pytest.raises(PromptError, match="--prompts .*does not exist"):
        read_prompts(tmp_path / "missing.txt")
    with pytest.raises(PromptError, match="exclude each other"):
        prompt_flags("a red 7", path)
    assert prompt_flags("a red 7", None) == (["a red 7"], False, "--prompt")


def test_prompts_need_a_text_export():
    with pytest.raises(PromptError, match="model.family=stylegan2, which takes no text"):
        export_tokenizer(json.loads('{"family": "stylegan2", "init_kwargs": {}}'))

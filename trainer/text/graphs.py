"""TorchScript graphs of text2img exports: (z [N, z_dim], tokens int64 [N, L]) -> images.

`tokens` are the builtin tokenizer's ids, padded with -1 to the context length; the tokenizer
JSON rides along in the graph's `generator.json` extra file, so code
outside hiresgan can encode prompts the same way (lower-case words and punctuation marks, id =
1 + position in `vocab`, 0 for unknown words). Truncation (toward each prompt's own mean w) is
fixed at export time. Exports with a Hugging Face encoder have no graph (their encoder stays in
its own folder), and there is no ONNX graph: the training kernels' resampling builds its filter
from the traced channel count, which ONNX cannot take as a dynamic kernel shape.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from trainer.models.text2img import truncation_latents


class TextGraphError(ValueError):
    """A graph this export cannot have; the message says what to use instead. (Not
    trainer.export's ExportError: trainer.export imports this module.)"""


class TextSamplingGraph(torch.nn.Module):
    def __init__(self, G: torch.nn.Module, *, truncation: float):
        super().__init__()
        self.G, self.truncation = G, float(truncation)
        self.register_buffer("latents", truncation_latents(G.z_dim))

    def forward(self, z: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        text = self.G.text(tokens)
        ws = self.G.map(z, text)
        if self.truncation != 1:
            ws = self.G.prompt_mean_w(text, self.latents).lerp(ws, self.truncation)
        # One shared-weight conv for the batch: per-sample (grouped) weights would give ONNX a
        # batch-dependent kernel shape.
        return self.G.synthesize(ws, text, noise_mode="const", fused_modconv=False)


def write_text_graph(
    G: torch.nn.Module, description: dict, target: Path, fmt: str, *, truncation: float, class_index=None
) -> Path:
    if class_index is not None:
        raise TextGraphError("--class does not apply to text2img exports: their graphs take caption token ids")
    if fmt != "torchscript":
        raise TextGraphError(
            "text2img exports have TorchScript graphs only (--format torchscript): the training "
            "kernels' resampling does not export to ONNX with a dynamic batch"
        )
    if description.get("text_encoder", "builtin") != "builtin":
        raise TextGraphError(
            f"text.encoder={description.get('text_encoder')} exports have no TorchScript/ONNX graph "
            "(the frozen Hugging Face encoder is not part of the export); sample with `hiresgan sample`"
        )
    graph = TextSamplingGraph(G.eval(), truncation=truncation).eval()
    context = int(description["init_kwargs"]["context"])
    tokens = torch.full([2, context], -1, dtype=torch.int64)
    tokens[:, :3] = torch.tensor([[1, 2, 3], [3, 2, 0]])
    example = (torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(0)), tokens)
    meta = {**description, "graph_inputs": ["z", "tokens"], "truncation": truncation}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape asserts become constants: intended
        traced = torch.jit.trace(graph, example, check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files={"generator.json": json.dumps(meta)})
    os.replace(tmp, target)
    return target

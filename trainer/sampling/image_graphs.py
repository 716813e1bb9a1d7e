"""TorchScript and ONNX graphs of the image-to-image exports (pix2pix, inpaint), for
`hiresgan export EXPORT --format torchscript|onnx`.

pix2pix: `images [N, C_in, H, W] -> output [N, C, H, W]`; inpaint: `(images [N, C, H, W],
masks [N, 1, H, W], 1 = missing) -> output` (the composites); pixels in [-1, 1]. Batch, height
and width are dynamic axes; H and W must divide by the export's `size_multiple` (recorded in the graph's metadata).
A class-conditional pix2pix export is traced for one class (`--class K`). The inpainting graph's
smooth prefill is traced at the export's resolution; other sizes get as many pyramid levels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import torch

FAMILIES = ("pix2pix", "inpaint")


class _Translate(torch.nn.Module):
    def __init__(self, G: torch.nn.Module, class_index: Optional[int]):
        super().__init__()
        self.G = G
        c = None if class_index is None else torch.nn.functional.one_hot(torch.tensor([class_index]), G.c_dim).float()
        self.register_buffer("c", c if c is not None else torch.zeros(0), persistent=False)
        self.conditional = c is not None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        c = self.c.expand(images.shape[0], -1) if self.conditional else None
        return self.G(images, c)


class _Inpaint(torch.nn.Module):
    def __init__(self, G: torch.nn.Module):
        super().__init__()
        self.G = G

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.G(images, masks)


def image_graph(G: torch.nn.Module, description: dict, *, class_index: Optional[int] = None):
    """(module, example inputs, input names) for tracing one image-to-image generator."""
    family, res = description["family"], G.img_resolution
    if family == "pix2pix":
        if G.c_dim and class_index is None:
            raise ValueError(f"this pix2pix export is class-conditional: pass --class K with K in 0..{G.c_dim - 1}")
        if class_index is not None and not 0 <= class_index < max(G.c_dim, 1):
            allowed = f"0..{G.c_dim - 1}" if G.c_dim else "no labels"
            raise ValueError(f"--class {class_index}: this export takes {allowed}")
        return _Translate(G, class_index).eval(), (torch.zeros(1, G.in_channels, res, res),), ["images"]
    if getattr(G, "generator", "unet") != "unet":
        raise ValueError(
            "ONNX/TorchScript graphs are written for the U-Net inpainting generator only; this export "
            "uses inpaint.generator=comod (sample it with `hiresgan sample --inpaint`)"
        )
    mask = torch.zeros(1, 1, res, res)
    mask[:, :, res // 4 : res // 2, res // 4 : res // 2] = 1
    return _Inpaint(G).eval(), (torch.zeros(1, G.img_channels, res, res), mask), ["images", "masks"]


def write_image_graph(
    G: torch.nn.Module, description: dict, out: Path, fmt: str, *, class_index: Optional[int] = None, opset: int = 17
) -> Path:
    graph, example, names = image_graph(G, description, class_index=class_index)
    meta = {**description, "graph_inputs": names, "class_index": class_index, "size_multiple": G.size_multiple}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with torch.no_grad():
        if fmt == "torchscript":
            traced = torch.jit.trace(graph, example, check_trace=False)
            torch.jit.save(traced, str(tmp), _extra_files={"generator.json": json.dumps(meta)})
        else:
            import onnx

            axes = {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(
                graph,
                example,
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=names,
                output_names=["output"],
                dynamic_axes={n: axes for n in names + ["output"]},
            )
            model = onnx.load(str(tmp))
            onnx.helper.set_model_props(model, {"hiresgan": json.dumps(meta)})
            onnx.save(model, str(tmp))
    os.replace(tmp, out)
    return out

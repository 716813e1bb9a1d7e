"""Pickle-free generator exports: safetensors weights plus a JSON that is enough to rebuild it.

`<run>/export/generator.safetensors` holds G_ema's parameters and buffers (the metadata repeats
the family and format version), `<run>/export/generator.json` the family, constructor arguments
and what a sampler needs to know (latent size, classes, resolution).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import safe_open

from trainer.files import save_safetensors
from trainer.models import build_generator

FORMAT = "hiresgan-generator"
FORMAT_VERSION = 1
WEIGHTS = "generator.safetensors"
DESCRIPTION = "generator.json"


class ExportError(ValueError):
    pass


def export_generator(
    G_ema: torch.nn.Module,
    out_dir: Path,
    *,
    class_names: Optional[list[str]] = None,
    training: Optional[dict[str, Any]] = None,
    metadata: Optional[dict[str, Any]] = None,
) -> Path:
    """Write G_ema to out_dir; returns the weights file. `metadata` is the recipe's
    `export_metadata()` (what samplers of that family need: a tokenizer, a scale), JSON only."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": G_ema.family,
        "init_kwargs": G_ema.init_kwargs,
        "z_dim": G_ema.z_dim,
        "c_dim": G_ema.c_dim,
        "img_resolution": G_ema.img_resolution,
        "img_channels": G_ema.img_channels,
        "class_names": class_names,
        "pixel_range": [-1, 1],
        "training": training or {},
    }
    clashes = sorted(set(metadata or {}) & set(description))
    if clashes:
        raise ExportError(f"recipe export_metadata() may not replace the export's own keys: {clashes}")
    description.update(metadata or {})
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in G_ema.state_dict().items()}
    weights, meta = out_dir / WEIGHTS, out_dir / DESCRIPTION
    tmp_weights, tmp_meta = out_dir / f".{WEIGHTS}.tmp", out_dir / f".{DESCRIPTION}.tmp"
    save_safetensors(
        tensors, tmp_weights, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION), "family": G_ema.family}
    )
    tmp_meta.write_text(json.dumps(description, indent=2))
    os.replace(tmp_weights, weights)
    os.replace(tmp_meta, meta)
    return weights


def resolve_export(path: Path) -> tuple[Path, Path]:
    """Accept an export folder, its safetensors file or its JSON; return (weights, json)."""
    path = Path(path)
    if path.is_dir():
        folder = path / "export" if (path / "export" / DESCRIPTION).is_file() else path  # a run dir works too
        weights, meta = folder / WEIGHTS, folder / DESCRIPTION
    elif path.suffix == ".safetensors":
        weights, meta = path, path.with_suffix(".json")
    elif path.suffix == ".json":
        weights, meta = path.with_suffix(".safetensors"), path
    else:
        raise ExportError(f"'{path}' is not an export: pass its folder, its .safetensors or its .json")
    for p in (weights, meta):
        if not p.is_file():
            raise ExportError(f"export file '{p}' does not exist")
    return weights, meta


def load_generator(path: Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild an exported generator (eval mode, no gradients) and return it with its description."""
    weights, meta = resolve_export(path)
    try:
        description = json.loads(meta.read_text())
    except ValueError as exc:
        raise ExportError(f"'{meta}' is not valid JSON: {exc}") from None
    if description.get("format") != FORMAT:
        raise ExportError(f"'{meta}' is not a hiresgan generator description (format={description.get('format')!r})")
    if description.get("format_version", 0) > FORMAT_VERSION:
        raise ExportError(
            f"'{meta}' has format_version {description['format_version']}; this hiresgan reads "
            f"up to {FORMAT_VERSION}: upgrade hiresgan"
        )
    G = build_generator(description["family"], description["init_kwargs"])
    with safe_open(str(weights), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    expected = G.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ExportError(
            f"'{weights}' does not match '{meta}': missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, wrong shapes {wrong[:5]}"
        )
    G.load_state_dict(tensors)
    return G.eval().requires_grad_(False).to(device), description


# ------------------------------------------------------------------ checkpoint -> export
def export_checkpoint(checkpoint: Path, out_dir: Path) -> Path:
    """Write the G_ema of a training checkpoint (verified against its manifest) as an export."""
    from safetensors.torch import load_file

    from trainer import checkpoint as ckpt
    from trainer.config import load_run_config
    from trainer.models import build_networks

    checkpoint = Path(checkpoint)
    problem = ckpt.verify(checkpoint)
    if problem:
        raise ExportError(f"checkpoint '{checkpoint}' is damaged: {problem}")
    run_dir = checkpoint.parent.parent  # <run>/checkpoints/step-N
    cfg = load_run_config(run_dir)
    G, _ = build_networks(cfg)
    G.load_state_dict(load_file(str(checkpoint / "ema.safetensors")))
    state = json.loads((checkpoint / "state.json").read_text())
    from trainer.data.sources import find_manifest

    class_names = (find_manifest(cfg.data.urls) or {}).get("class_names")
    training = {
        "run": cfg.run.name,
        "kimg": state.get("images_seen", 0) / 1000,
        "step": state.get("step"),
        "checkpoint": checkpoint.name,
    }
    return export_generator(G.eval(), out_dir, class_names=class_names, training=training)


def resolve_source(source: Path) -> tuple[Path, Optional[Path]]:
    """An export (folder/.safetensors/.json) -> (it, None); a checkpoint or a run directory ->
    (its newest verified checkpoint's would-be export folder, the checkpoint)."""
    from trainer import checkpoint as ckpt

    source = Path(source)
    if source.suffix in (".safetensors", ".json") or (source / DESCRIPTION).is_file():
        return resolve_export(source)[0].parent, None
    if (source / ckpt.MANIFEST).is_file() or source.name.startswith("step-"):
        found = source
    elif source.is_dir() and ckpt.list_checkpoints(source):
        found = ckpt.find_resumable(source)
        if found is None:
            raise ExportError(f"'{source}' has no undamaged checkpoint")
    elif (source / "export" / DESCRIPTION).is_file():
        return source / "export", None
    else:
        raise ExportError(f"'{source}' is neither an export, a checkpoint nor a run directory with either")
    return found.parent.parent / "exports" / found.name, found


# ------------------------------------------------------------------ TorchScript and ONNX
class SamplingGraph(torch.nn.Module):
    """What the TorchScript and ONNX files compute: z [N, z_dim] (+ class_index int64 [N] when
    conditional and no class is fixed) -> images [N, C, H, W] in [-1, 1], const noise, with the
    truncation (and class) chosen at export time baked in."""

    def __init__(self, G: torch.nn.Module, *, truncation: float, class_index: Optional[int]):
        super().__init__()
        self.G, self.truncation, self.fixed_class = G, float(truncation), class_index is not None
        self.register_buffer("classes", torch.eye(max(G.c_dim, 1)))
        if class_index is not None:
            self.classes = self.classes[class_index : class_index + 1]

    def input_names(self) -> list[str]:
        return ["z", "class_index"] if self.G.c_dim and not self.fixed_class else ["z"]

    def forward(self, z: torch.Tensor, class_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not self.G.c_dim:
            c = None
        elif self.fixed_class:
            c = self.classes.expand(z.shape[0], -1)
        else:
            c = self.classes[class_index]  # a gather: out-of-range indices fail in the runtime
        return self.G(z, c, self.truncation)


# Families whose generator maps (z, c) to images with the keyword `truncation_psi`: graphs of them
# are traced from the training code's generator (stylegan2 from the standalone sampler's).
LATENT_GRAPH_FAMILIES = ("mlp", "dcgan", "biggan", "progan")


class LatentAdapter(torch.nn.Module):
    """A latent family's generator called as SamplingGraph calls the sampler's: G(z, c, psi)."""

    def __init__(self, G: torch.nn.Module):
        super().__init__()
        self.G, self.z_dim, self.c_dim = G, G.z_dim, G.c_dim

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor], truncation: float) -> torch.Tensor:
        return self.G(z, c, truncation_psi=truncation, noise_mode="const")


def export_family(export: Path) -> str:
    _, meta = resolve_export(export)
    try:
        return str(json.loads(meta.read_text()).get("family"))
    except ValueError as exc:
        raise ExportError(f"'{meta}' is not valid JSON: {exc}") from None


def sampling_graph(
    export: Path, *, truncation: float = 1.0, class_index: Optional[int] = None
) -> tuple[SamplingGraph, tuple, dict]:
    """The generator of `export` wrapped for tracing, with example inputs: the standalone sampler's
    for stylegan2, the training code's for the other latent families."""
    from sampler.hiresgan_sampler import latents
    from sampler.hiresgan_sampler import load_generator as load_standalone

    family = export_family(export)
    if family in LATENT_GRAPH_FAMILIES:
        G, description = load_generator(export)
        G = LatentAdapter(G.eval())
    elif family == "stylegan2":
        G, description = load_standalone(export)
    else:
        raise ExportError(
            f"family {family} exports cannot be written as TorchScript/ONNX graphs (graphs exist for "
            f"stylegan2, {', '.join(LATENT_GRAPH_FAMILIES)}, pix2pix, inpaint and, as TorchScript, "
            "text2img); sample it with `hiresgan sample` instead"
        )
    if class_index is not None:
        if not G.c_dim:
            raise ExportError("--class was given but this generator is unconditional")
        if not 0 <= class_index < G.c_dim:
            raise ExportError(f"--class {class_index} is out of range: this generator has classes 0..{G.c_dim - 1}")
    graph = SamplingGraph(G, truncation=truncation, class_index=class_index).eval()
    example = (latents([0, 1], G.z_dim),)
    if len(graph.input_names()) == 2:
        example += (torch.tensor([0, G.c_dim - 1]),)
    return graph, example, description


def graph_file_name(fmt: str, truncation: float, class_index: Optional[int]) -> str:
    suffix = (f"-class{class_index}" if class_index is not None else "") + (
        f"-psi{truncation:g}" if truncation != 1 else ""
    )
    return f"generator{suffix}." + ("torchscript.pt" if fmt == "torchscript" else "onnx")


def export_torchscript(export: Path, out: Path, *, truncation: float = 1.0, class_index: Optional[int] = None) -> Path:
    graph, example, description = sampling_graph(export, truncation=truncation, class_index=class_index)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape asserts become constants: intended
        traced = torch.jit.trace(graph, example, check_trace=False)
    tmp = out.with_name(f".{out.name}.tmp")
    meta = {**description, "graph_inputs": graph.input_names(), "truncation": truncation, "class_index": class_index}
    torch.jit.save(traced, str(tmp), _extra_files={"generator.json": json.dumps(meta)})
    os.replace(tmp, out)
    return out


def export_onnx(
    export: Path, out: Path, *, truncation: float = 1.0, class_index: Optional[int] = None, opset: int = 17
) -> Path:
    import onnx

    graph, example, description = sampling_graph(export, truncation=truncation, class_index=class_index)
    names = graph.input_names()
    tmp = out.with_name(f".{out.name}.tmp")
    # The TorchScript-based exporter: it needs no onnxscript and keeps the batch axis dynamic.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            graph,
            example,
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=names,
            output_names=["images"],
            dynamic_axes={n: {0: "batch"} for n in names + ["images"]},
        )
    model = onnx.load(str(tmp))
    meta = {**description, "graph_inputs": names, "truncation": truncation, "class_index": class_index}
    onnx.helper.set_model_props(model, {"hiresgan": json.dumps(meta)})
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    return out


def run_export(
    source: Path, fmt: str, *, out: Optional[Path] = None, truncation: float = 1.0, class_index: Optional[int] = None
) -> Path:
    """`hiresgan export`: safetensors (canonical), torchscript or onnx, from an export, checkpoint or run."""
    if fmt not in ("safetensors", "torchscript", "onnx"):
        raise ExportError(f"--format {fmt!r}: valid choices are safetensors, torchscript, onnx")
    if fmt == "safetensors" and (truncation != 1 or class_index is not None):
        raise ExportError(
            "--truncation and --class apply to torchscript/onnx graphs; the safetensors export "
            "keeps the whole generator (pass them to the sampler instead)"
        )
    folder, checkpoint = resolve_source(source)
    if checkpoint is not None and fmt == "safetensors":
        return export_checkpoint(checkpoint, out or folder)
    if checkpoint is not None:
        if not (folder / DESCRIPTION).is_file():
            export_checkpoint(checkpoint, folder)
    elif fmt == "safetensors":
        if out is None:
            return folder / WEIGHTS  # it already is one
        G, description = load_generator(folder)
        return export_generator(
            G, out, class_names=description.get("class_names"), training=description.get("training")
        )
    target = Path(out) if out else folder / graph_file_name(fmt, truncation, class_index)
    if json.loads((folder / DESCRIPTION).read_text()).get("family") in ("pix2pix", "inpaint"):
        from trainer.sampling.image_graphs import write_image_graph  # image in, image out: no latent, no truncation

        G, description = load_generator(folder)
        return write_image_graph(G, description, target, fmt, class_index=class_index)
    if json.loads((folder / DESCRIPTION).read_text()).get("family") == "text2img":
        from trainer.text.graphs import write_text_graph  # (z, caption token ids) -> images

        G, description = load_generator(folder)
        return write_text_graph(G, description, target, fmt, truncation=truncation, class_index=class_index)
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = export_torchscript if fmt == "torchscript" else export_onnx
    return writer(folder, target, truncation=truncation, class_index=class_index)

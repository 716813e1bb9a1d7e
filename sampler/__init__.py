"""The standalone sampler: everything is in hiresgan_sampler.py, a single file meant to be copied."""

from sampler.hiresgan_sampler import ExportError, Generator, latents, load_generator

__all__ = ["ExportError", "Generator", "latents", "load_generator"]

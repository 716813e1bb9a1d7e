"""Triton kernels and their launchers. Imported only when a Triton implementation is selected
(see kernels/_dispatch.py); nothing here is public API."""

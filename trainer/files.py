"""Files written the way the user's shell would write them.

safetensors' `save_file` creates its file with mode 0600 (owner only) whatever the umask, so
exports and checkpoints on a shared file system were unreadable to teammates. Everything hiresgan
writes with it goes through `save_safetensors`, which leaves the file as `open()` would have:
0666 minus the process's umask."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional


def current_umask() -> int:
    """The process's umask, read without changing it (Linux /proc; else set-and-restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_umask_allows(path: str | Path) -> None:
    """Give a file the permissions a plain open() would have given it."""
    os.chmod(path, 0o666 & ~current_umask())


def save_safetensors(tensors: Mapping, path: str | Path, metadata: Optional[dict[str, str]] = None) -> None:
    """safetensors.torch.save_file (torch tensors), then the umask's permissions."""
    from safetensors.torch import save_file

    save_file(dict(tensors), str(path), metadata=metadata)
    as_umask_allows(path)


def save_numpy_safetensors(arrays: Mapping, path: str | Path, metadata: Optional[dict[str, str]] = None) -> None:
    """safetensors.numpy.save_file, then the umask's permissions."""
    from safetensors.numpy import save_file

    save_file(dict(arrays), str(path), metadata=metadata)
    as_umask_allows(path)

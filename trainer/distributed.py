"""The only module that touches torch.distributed and DeepSpeed.

Ranks learn who they are from the environment a launcher sets (torchrun / the elastic agent:
RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Without it, a process
runs as a world of one.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node: str  # hostname, a metrics label
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _quiet_deepspeed() -> None:
    # DeepSpeed logs every engine's full config at INFO; keep the console for our progress bar.
    from deepspeed.utils import logger as ds_logger

    ds_logger.setLevel(logging.WARNING)


def init_distributed(backend: str = "auto") -> DistEnv:
    """Join the process group described by the environment (or make a world of one)."""
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("LOCAL_WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(free_port())
    local_rank = int(os.environ["LOCAL_RANK"])
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise RuntimeError("launch.backend=nccl needs CUDA GPUs; use launch.backend=gloo (or auto) on CPU")
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    import deepspeed

    _quiet_deepspeed()
    _skip_shared_memory_comm_op(deepspeed)
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend=backend, verbose=False)
    return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                   local_world_size=int(os.environ["LOCAL_WORLD_SIZE"]), node=socket.gethostname(),
                   device=device)


def _skip_shared_memory_comm_op(deepspeed) -> None:
    """Keep DeepSpeed from compiling its CPU shared-memory op on first use.

    DeepSpeed's torch backend JIT-builds `deepspeed_shm_comm` (a C++ compile of a minute or more on
    2 cores, on a fresh machine) when it initializes, but uses it only for
    `inference_all_reduce`; training all-reduces go through torch.distributed. Marking the op as
    incompatible in DeepSpeed's cached table (edits to it persist, by its own design) skips the build.
    """
    try:
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    except Exception:  # a DeepSpeed without the table: it builds or not as it sees fit
        pass


def engine_config(*, micro_batch: int, world_size: int, lr: float, betas: tuple[float, float], eps: float,
                  zero_stage: int, precision: str) -> dict[str, Any]:
    """The DeepSpeed config of one network's engine (Adam, no scheduler, one micro-step per step)."""
    if zero_stage not in (0, 1, 2):
        raise ValueError(f"train.zero_stage={zero_stage}: only 0, 1 and 2 work with the two-engine GAN")
    return {
        "train_batch_size": micro_batch * world_size,
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": 1,
        # torch's Adam: no C++ extension to build, and identical maths on CPU and GPU.
        "optimizer": {"type": "Adam", "params": {"lr": lr, "betas": list(betas), "eps": eps,
                                                 "weight_decay": 0.0, "torch_adam": True}},
        "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": precision == "bf16"},
        "steps_per_print": 10 ** 9,
        "wall_clock_breakdown": False,
    }


def build_engine(module: torch.nn.Module, config: dict[str, Any]):
    """Wrap one network in a DeepSpeed engine (its own optimizer, gradient reduction, ZeRO)."""
    import deepspeed

    params = [p for p in module.parameters() if p.requires_grad]
    engine, _, _, _ = deepspeed.initialize(model=module, model_parameters=params, config=config)
    return engine


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()
    return tensor


def all_gather_tensor(tensor: torch.Tensor) -> list[torch.Tensor]:
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [tensor]
    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(out, tensor)
    return out


def collective_device() -> torch.device:
    """Where tensors for collectives must live: the current GPU under NCCL, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

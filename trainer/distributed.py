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
    return DistEnv(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        local_world_size=int(os.environ["LOCAL_WORLD_SIZE"]),
        node=socket.gethostname(),
        device=device,
    )


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


def engine_config(
    *,
    micro_batch: int,
    world_size: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    zero_stage: int,
    precision: str,
) -> dict[str, Any]:
    """The DeepSpeed config of one network's engine (Adam, no scheduler, one micro-step per step)."""
    if zero_stage not in (0, 1, 2):
        raise ValueError(f"train.zero_stage={zero_stage}: only 0, 1 and 2 work with the two-engine GAN")
    return {
        "train_batch_size": micro_batch * world_size,
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": 1,
        # torch's Adam: no C++ extension to build, and identical maths on CPU and GPU.
        "optimizer": {
            "type": "Adam",
            "params": {"lr": lr, "betas": list(betas), "eps": eps, "weight_decay": 0.0, "torch_adam": True},
        },
        "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": precision == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def build_engine(module: torch.nn.Module, config: dict[str, Any]):
    """Wrap one network in a DeepSpeed engine (its own optimizer, gradient reduction, ZeRO)."""
    import deepspeed

    params = [p for p in module.parameters() if p.requires_grad]
    engine, _, _, _ = deepspeed.initialize(model=module, model_parameters=params, config=config)
    return engine


def is_partitioned(engine) -> bool:
    """True when DeepSpeed keeps the fp32 master weights and Adam moments in flat per-rank
    partitions (ZeRO 1/2, or its bf16 optimizer at any stage), reachable per parameter through
    its tensor-fragment API; False for stage 0 in fp32, where the engine's optimizer is torch's
    Adam with ordinary per-parameter state, replicated on every rank."""
    return any(hasattr(p, "_hp_mapping") for p in engine.module.parameters())


def _group_of(engine) -> dict[int, int]:
    """id(parameter) -> index of the optimizer param group holding it (partitioned engines).
    Taken from DeepSpeed's low-precision groups: a rank that owns no slice of a parameter has
    `_hp_mapping = None` for it and cannot say so itself."""
    groups = getattr(engine.optimizer, "bit16_groups", None) or engine.optimizer.bf16_groups
    return {id(p): i for i, group in enumerate(groups) for p in group}


def has_full_optimizer_state(engine) -> bool:
    """Whether `full_optimizer_state` can read this engine: partitioned (ZeRO 1/2, bf16 optimizer)
    or torch's Adam directly on the module's parameters (stage 0, fp32). Not DeepSpeed's
    FP16_Optimizer wrapper (stage 0 with bf16 on some set-ups), whose state is keyed by flat fp32
    copies; reading it per parameter would silently find nothing."""
    if is_partitioned(engine):
        return True
    groups = getattr(engine.optimizer, "param_groups", None) or []
    held = {id(p) for g in groups for p in g["params"]}
    return bool(held) and held <= {id(p) for p in engine.module.parameters()}


def full_optimizer_state(engine) -> dict[str, torch.Tensor]:
    """One engine's Adam state as it would be on a single rank, whatever the world size:
    `fp32/<param>`, `exp_avg/<param>`, `exp_avg_sq/<param>`, `step/<param>` (CPU tensors).

    Collective when the state is partitioned (every rank calls it, in the same order: one
    all-reduce per parameter and key assembles the fragments); the result is complete on every
    rank. Empty before the first optimizer step (there is no state yet)."""
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    out: dict[str, torch.Tensor] = {}
    if is_partitioned(engine):
        inner = engine.optimizer.optimizer
        if not all(inner.state.get(g["params"][0]) for g in inner.param_groups):
            return out  # no step taken yet (the same on every rank: they step together)
        steps = [inner.state[g["params"][0]]["step"] for g in inner.param_groups]
        group_of = _group_of(engine)
        for name, p in engine.module.named_parameters():
            if not hasattr(p, "_hp_mapping"):
                continue
            out[f"fp32/{name}"] = safe_get_full_fp32_param(p).detach().cpu()
            for key in ("exp_avg", "exp_avg_sq"):
                out[f"{key}/{name}"] = safe_get_full_optimizer_state(p, key).detach().cpu()
            out[f"step/{name}"] = torch.as_tensor(steps[group_of[id(p)]], dtype=torch.float32).cpu().clone()
        return out
    optimizer = engine.optimizer
    for name, p in engine.module.named_parameters():
        state = optimizer.state.get(p)
        if not state:  # a parameter that never had a gradient has no Adam state
            continue
        out[f"fp32/{name}"] = p.detach().float().cpu().clone()  # not a view of the live weight
        for key in ("exp_avg", "exp_avg_sq"):
            out[f"{key}/{name}"] = state[key].detach().cpu()
        out[f"step/{name}"] = torch.as_tensor(state["step"], dtype=torch.float32).cpu().clone()
    return out


def load_full_optimizer_state(engine, tensors: dict[str, torch.Tensor]) -> None:
    """Put a `full_optimizer_state` into a freshly built engine of any world size: each rank keeps
    the slices of its own partition (DeepSpeed's fragment API cuts them), and the module weights
    are set from the fp32 masters (exact in fp32; the bf16 weights round the same way DeepSpeed's
    step does). Not collective."""
    from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state

    if not tensors:
        return  # saved before the first step: a fresh engine is already that state
    params = dict(engine.module.named_parameters())
    unknown = sorted({k.split("/", 1)[1] for k in tensors} - set(params))
    if unknown:
        raise ValueError(f"optimizer state names parameters this model does not have: {', '.join(unknown[:5])}")
    with torch.no_grad():
        if is_partitioned(engine):
            # A fresh ZeRO/bf16 optimizer has no Adam state until its first step; make it (zeros in
            # each flat partition), let DeepSpeed link the per-parameter views to it, then fill them.
            inner, ds_optimizer = engine.optimizer.optimizer, engine.optimizer
            group_of = _group_of(engine)
            for i, group in enumerate(inner.param_groups):
                flat = group["params"][0]
                names = [n for n, p in params.items() if group_of.get(id(p)) == i and f"step/{n}" in tensors]
                step = tensors[f"step/{names[0]}"].clone() if names else torch.tensor(0.0)
                inner.state[flat] = {
                    "step": step,
                    "exp_avg": torch.zeros_like(flat),
                    "exp_avg_sq": torch.zeros_like(flat),
                }
            ds_optimizer._hp_optimizer_states_linked = False
            ds_optimizer._lazy_init_hp_params_optimizer_state()
            for name, p in params.items():
                if f"fp32/{name}" not in tensors:
                    continue
                safe_set_full_fp32_param(p, tensors[f"fp32/{name}"].to(p.device))
                for key in ("exp_avg", "exp_avg_sq"):
                    safe_set_full_optimizer_state(p, tensors[f"{key}/{name}"].to(p.device), key)
                p.data.copy_(tensors[f"fp32/{name}"].to(p.device, p.dtype))
            return
        optimizer = engine.optimizer
        for name, p in params.items():
            if f"fp32/{name}" not in tensors:
                continue
            p.data.copy_(tensors[f"fp32/{name}"].to(p.device, p.dtype))
            optimizer.state[p] = {
                "step": tensors[f"step/{name}"].clone(),
                "exp_avg": tensors[f"exp_avg/{name}"].to(p.device).clone(),
                "exp_avg_sq": tensors[f"exp_avg_sq/{name}"].to(p.device).clone(),
            }


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


def lazy_adam(lr: float, beta1: float, beta2: float, interval: int) -> tuple[float, tuple[float, float]]:
    """Lazy regularization steps the optimizer interval+1 times per `interval` batches, so lr and
    betas are rescaled to keep the per-batch dynamics (Karras et al. 2020, appendix B)."""
    if interval <= 0:
        return lr, (beta1, beta2)
    ratio = interval / (interval + 1)
    return lr * ratio, (beta1**ratio, beta2**ratio)

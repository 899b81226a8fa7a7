"""Where training runs: the device, the number format, and the process group under ``torchrun``.

``torchrun --nproc-per-node N -m mammotools train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
then each process trains on its shard of every epoch (DistributedSampler), the model is wrapped
in DistributedDataParallel (NCCL on GPUs, gloo on CPUs), validation counts are summed over the
ranks, and rank 0 alone writes. Without those variables it is one process.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from mammotools.errors import InputError


@dataclass(frozen=True)
class Runtime:
    """The device and process group one training process runs in."""

    device: torch.device
    amp_dtype: torch.dtype | None  # None: fp32
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    @property
    def uses_scaler(self) -> bool:
        """fp16 needs a gradient scaler; bf16 and fp32 do not."""
        return self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def start_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """The runtime for this process: joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu or auto")
    if want_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    return Runtime(dev, _amp_dtype(dev, precision), rank, world, local_rank)


def _amp_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return None  # bf16 autocast of the VGG16 models aborted on this CPU (measured): fp32 on CPUs
    if precision == "fp16" or (precision == "auto" and not torch.cuda.is_bf16_supported()):
        if device.type == "cpu":
            raise InputError("--precision fp16: only on a GPU; on the CPU use fp32 (or bf16 where the CPU supports it)")
        return torch.float16
    return torch.bfloat16


def stop_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch (every device); with ``deterministic``, deterministic kernels too."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def rng_states() -> dict:
    """Python, numpy and torch random states (saved in each checkpoint)."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def loader_workers(requested: int) -> int:
    """Loader processes: as asked, else one per core left after the trainers' (one trainer per
    process torchrun starts on this machine), at most 8."""
    if requested >= 0:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(8, cores // local - 1))


@contextlib.contextmanager
def main_first(runtime: Runtime) -> Iterator[None]:
    """Rank 0 goes first (writes), the others wait, then all go on."""
    if not runtime.is_main:
        barrier(runtime)
    yield
    if runtime.is_main:
        barrier(runtime)

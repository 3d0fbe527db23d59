"""`--device` for training and serving: cpu | cuda | cuda:N | auto, resolved once, with a one-line
error when CUDA is asked for and missing; FAISS GPU indexes when the installed FAISS has GPUs.

The CPU wheel of torch (what `make setup` installs) has no CUDA: on a GPU machine install a CUDA
build of torch and FAISS from conda-forge (`faiss-gpu`), never the `faiss-gpu` wheel next to
`faiss-cpu` (both are the module `faiss`); docs/SCALING.md "GPU"."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

DEVICES_HELP = "cpu | cuda | cuda:N | auto (cuda when available, else cpu)"


class DeviceError(ValueError):
    """A device that is malformed or not available here; the message is one line."""


def resolve_device(spec: str = "cpu") -> torch.device:
    s = (spec or "cpu").strip().lower()
    if s == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if s == "cpu":
        return torch.device("cpu")
    if s == "cuda" or (s.startswith("cuda:") and s[5:].isdigit()):
        if not torch.cuda.is_available():
            build = "built without CUDA" if torch.version.cuda is None else "no GPU visible"
            raise DeviceError(
                f"--device {spec}: CUDA is not available (torch {torch.__version__}, {build}); "
                "use --device cpu or auto"
            )
        index = int(s[5:]) if ":" in s else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", index)
    raise DeviceError(f"--device {spec!r}: expected {DEVICES_HELP}")


def describe(device: torch.device) -> str:
    """ "cpu (N threads)" or "cuda:0 (<GPU name>)": what benches and training print."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def faiss_gpus() -> int:
    """GPUs the installed FAISS can use (0 for faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def faiss_gpu_for(device: torch.device, num_gpus: int | None = None) -> int | None:
    """The FAISS GPU ordinal a retrieval index on `device` uses, or None for a CPU index: a GPU
    only when `device` is CUDA and FAISS has GPUs (`num_gpus`, default the installed FAISS's
    count; 0 for faiss-cpu, so a CPU FAISS searches on the CPU whatever the torch device)."""
    if device.type != "cuda":
        return None
    n = faiss_gpus() if num_gpus is None else num_gpus
    if n <= 0:
        return None
    return min(device.index or 0, n - 1)


def faiss_index_to_device(index: Any, device: torch.device) -> Any:
    """`index` moved to the GPU of `device` when that is CUDA and FAISS has GPUs; else as is."""
    gpu = faiss_gpu_for(device)
    return index if gpu is None else faiss_index_to_gpu(index, gpu)


def faiss_index_to_gpu(index: Any, gpu: int) -> Any:  # pragma: no cover - needs faiss-gpu
    import faiss

    res = faiss.StandardGpuResources()
    moved = faiss.index_cpu_to_gpu(res, gpu, index)
    moved.referenced_objects = [res]  # the resources must outlive the index
    return moved


def to_cpu(t: torch.Tensor) -> Any:
    """A result tensor as a CPU numpy array (float32 for reduced-precision floats)."""
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.cpu().numpy()


@contextmanager
def on_cpu(model: torch.nn.Module, device: torch.device) -> Iterator[torch.nn.Module]:
    """`model` on the CPU inside the block, back on `device` after (for code that builds its
    tensors on the CPU: the ranker's evaluation). `Module.to` moves parameters in place, so an
    optimizer holding them stays valid; a no-op when `device` is the CPU."""
    if device.type == "cpu":
        yield model
        return
    model.to("cpu")
    try:
        yield model
    finally:
        model.to(device)

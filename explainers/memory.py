"""How many images a gradient method may push through the network at once.

The budget comes from measuring, not guessing: on CUDA, the peak memory of one forward and
backward pass over a few images; on CPU, the bytes of every activation the network makes
for one image (kept for the backward pass, plus their gradients). The memory free at the
time, less a margin, divided by that gives the batch. A CUDA out-of-memory error still
halves the batch and retries (`halving_on_oom`), so no setting runs out of memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from whybox.model_zoo import WhyboxError
from whybox.model_zoo.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

CPU_BUDGET_BYTES = 2**29
"""At most this much memory for one batch on CPU, where bigger batches gain nothing and
then lose: their activations no longer fit the caches (docs/benchmarks.md, Occlusion)."""
CUDA_FREE_SHARE = 0.6
"""Share of the free GPU memory a batch may take (the rest: allocator slack, outputs)."""
CPU_AVAILABLE_SHARE = 0.4
CPU_BACKWARD_FACTOR = 3
"""Activations are kept for the backward pass and each gets a gradient: about 3x."""
CUDA_PROBE_ITEMS = 4
MAX_BATCH = 4096


def available_cpu_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else the CPU budget itself."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return CPU_BUDGET_BYTES


def cuda_free_bytes() -> int:
    """GPU memory this process can still use: free on the device, plus what torch's caching
    allocator holds but no tensor uses (mem_get_info counts that as taken)."""
    free, _ = torch.cuda.mem_get_info()
    return free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()


def module_outputs(
    network: torch.nn.Module, sample: torch.Tensor, leaves_only: bool = False
) -> list[tuple[str, tuple[int, ...], int]]:
    """(name, shape, bytes) of every submodule's tensor output for `sample`, read with
    forward hooks, in the order the forward passes finish (a container after its children);
    a tuple of tensors counts with shape (). Converted ONNX graphs have a submodule per node.

    Measured once per network, input shape and dtype: on small images the probe costs as
    much as explaining them with a one-pass method.
    """
    key = (tuple(sample.shape), sample.dtype, leaves_only)
    measured = _PROBED.setdefault(network, {})
    if key not in measured:
        measured[key] = _probe(network, sample, leaves_only)
    return measured[key]


_PROBED: WeakKeyDictionary[torch.nn.Module, dict[tuple, list]] = WeakKeyDictionary()


def _probe(
    network: torch.nn.Module, sample: torch.Tensor, leaves_only: bool
) -> list[tuple[str, tuple[int, ...], int]]:
    outputs: list[tuple[str, tuple[int, ...], int]] = []
    handles = []
    for name, module in network.named_modules():
        if leaves_only and any(True for _ in module.children()):
            continue

        def record(module: object, inputs: object, output: object, name: str = name) -> None:
            if isinstance(output, torch.Tensor):
                outputs.append((name, tuple(output.shape), output.numel() * output.element_size()))
            elif isinstance(output, tuple):  # a node with several outputs: their bytes, no shape
                size = sum(t.numel() * t.element_size() for t in output if torch.is_tensor(t))
                outputs.append((name, (), size))

        handles.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            network(sample)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def _activation_bytes(forward: torch.nn.Module, sample: torch.Tensor) -> int:
    """Bytes of the input and of every leaf module's output for `sample` (one item)."""
    leaves = module_outputs(forward, sample, leaves_only=True)
    return sample.numel() * sample.element_size() + sum(size for _, _, size in leaves)


def _cuda_peak_bytes(forward: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> int:
    """Peak CUDA memory of one forward and backward pass over `batch`, per item."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    inputs = batch.clone().requires_grad_()
    with torch.enable_grad():
        output = forward(inputs)
        torch.autograd.grad(output.float().sum(), inputs)
    torch.cuda.synchronize()
    return max(1, (torch.cuda.max_memory_allocated() - before) // len(batch))


def gradient_batch(
    forward: torch.nn.Module, item_shape: tuple[int, ...], device: str, differentiable: bool = True
) -> int:
    """Items of shape `item_shape` one forward (and backward) call may take on `device`."""
    if device == "cuda":
        probe = torch.rand(CUDA_PROBE_ITEMS, *item_shape, device=device)
        if differentiable:
            per_item = _cuda_peak_bytes(forward, probe)
        else:
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            with torch.inference_mode():
                forward(probe)
            per_item = max(1, (torch.cuda.max_memory_allocated() - before) // len(probe))
        budget = int(cuda_free_bytes() * CUDA_FREE_SHARE)
    else:
        per_item = _activation_bytes(forward, torch.rand(1, *item_shape))
        if differentiable:
            per_item *= CPU_BACKWARD_FACTOR
        budget = min(CPU_BUDGET_BYTES, int(available_cpu_bytes() * CPU_AVAILABLE_SHARE))
    return int(max(1, min(MAX_BATCH, budget // max(per_item, 1))))


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def halving_on_oom(budget: int, exc: BaseException) -> int:
    """The smaller budget to retry with after `exc`, or re-raise it as a WhyboxError."""
    if not is_out_of_memory(exc):
        raise exc
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if budget <= 1:
        raise WhyboxError(
            "one image does not fit in the GPU's free memory; close other GPU work or "
            "use --device cpu"
        ) from None
    return budget // 2

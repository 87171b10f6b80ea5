"""The two moves every CUDA-graph user makes: warm up on a side stream, then record one call.

PyTorch's CUDA-graph notes ask for warm-up calls on a side stream (lazy initialisation, cuBLAS
workspaces and compilation must not happen inside a capture), and a recorded graph then replays
the same kernels on the same memory. ``step_graph.StepGraph`` (training) and
``sampling`` (one generated token) both build on these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def on_side_stream(fn: Callable[..., T], *args: torch.Tensor) -> T:
    """``fn(*args)`` run on a side stream, ordered after and before the current stream's work."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        outputs = fn(*args)
    torch.cuda.current_stream().wait_stream(side)
    return outputs


def record(fn: Callable[..., T], *args: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, T]:
    """One call of ``fn(*args)`` recorded as a CUDA graph (not run); replaying the graph refills its outputs.

    thread_local capture: a DataLoader's pin-memory thread may allocate pinned memory meanwhile.
    """
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        outputs = fn(*args)
    return graph, outputs

"""Surviving out-of-memory: recognise it, free memory, split the batch, fall back, then review.

The ladder every batch stage goes through (:class:`OomLadder`, run by the stage runner)::

    process(batch) ──oom──► free memory ──► process(first half) + process(second half) ...
                                              (recursively, down to one item)
    process([item]) ──oom──► free memory ──► tiled(item)   (when the stage has a tiled path)
    tiled(item) ──oom──► exhausted(item)                    (review, RESOURCE_EXHAUSTED)

Any other exception passes through unchanged (the runner isolates and dead-letters it as
before), so only memory pressure takes this path. :func:`exhausted_events` builds what an item
that ran out of memory even alone publishes: a ``review`` event with reason
``RESOURCE_EXHAUSTED`` and a ``metrics`` event with outcome ``error``, which counts as a failure
in the circuit breaker's window (a wave of them opens it).
"""

from __future__ import annotations

import gc
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

from consumers.derived import derived_event
from schemas.events import (
    CloudEvent,
    ItemContext,
    MetricsData,
    Reason,
    ReviewData,
    Topic,
    Trail,
)
from schemas.reasons import ReasonCode

__all__ = [
    "OomLadder",
    "exhausted_events",
    "free_memory",
    "is_out_of_memory",
    "peak_memory",
    "reset_peak_memory",
]

ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT")

_OOM_MESSAGES = (
    "out of memory",  # torch CUDA/MPS caching allocator, cuDNN/cuBLAS "CUDA error: out of memory"
    "can't allocate memory",  # torch's DefaultCPUAllocator
    "failed to allocate memory",  # onnxruntime's BFC arena and CPU allocator
    "bad allocation",  # std::bad_alloc surfaced through pybind11 (onnxruntime, OpenCV)
    "std::bad_alloc",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) means memory ran out.

    - :class:`torch.cuda.OutOfMemoryError`: the CUDA caching allocator could not serve a
      request (a subclass of ``RuntimeError``; tested first since it is the common GPU case);
    - :class:`MemoryError`: Python or numpy could not allocate (large arrays on the CPU);
    - a ``RuntimeError`` whose message says so: torch's CPU allocator ("can't allocate memory"),
      CUDA errors raised outside the caching allocator ("CUDA error: out of memory"), and
      onnxruntime's ``RuntimeException``/``Fail`` (subclasses of ``RuntimeError`` raised by its
      pybind layer, "Failed to allocate memory" or ``std::bad_alloc``), which have no type of
      their own to test for.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, torch.cuda.OutOfMemoryError | MemoryError):
            return True
        if isinstance(current, RuntimeError):
            message = str(current).lower()
            if any(text in message for text in _OOM_MESSAGES):
                return True
        current = current.__cause__ or current.__context__
    return False


def free_memory() -> None:
    """Return cached memory before a retry: Python's garbage (tensors in reference cycles, the
    failed batch's intermediates) and, with CUDA, the caching allocator's unused blocks."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reset_peak_memory() -> None:
    """Start a new peak for :func:`peak_memory` (CUDA only: the CPU figure is the process's)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> tuple[str, int]:
    """``("cuda", bytes)``: the CUDA allocator's peak since :func:`reset_peak_memory` (on the
    current device, shared by every stage of the process); without CUDA ``("cpu", bytes)``: the
    process's peak resident set size (Linux reports ``ru_maxrss`` in KiB)."""
    if torch.cuda.is_available():
        return "cuda", int(torch.cuda.max_memory_allocated())
    return "cpu", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True)
class OomLadder(Generic[ItemT, OutT]):
    """``process`` over a batch, splitting it in halves on out-of-memory down to one item; a
    single item that still fails goes to ``tiled`` (if any), then to ``exhausted``."""

    process: Callable[[Sequence[ItemT]], list[OutT]]
    """The stage's batch step: one output per item, same order."""
    tiled: Callable[[ItemT], OutT] | None
    """The stage's single-item path under less memory (None: the stage has none)."""
    exhausted: Callable[[ItemT, BaseException], OutT]
    """The output of an item that ran out of memory even alone."""
    on_split: Callable[[int], None] | None = None
    """Told the size of each batch that is split (for logs and counters)."""

    def __call__(self, items: Sequence[ItemT]) -> list[OutT]:
        """One output per item, same order; raises whatever is not out-of-memory."""
        try:
            return self.process(items)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            free_memory()
            if len(items) > 1:
                return self._split(items)
            return [self._single(items[0], exc)]

    def _split(self, items: Sequence[ItemT]) -> list[OutT]:
        if self.on_split is not None:
            self.on_split(len(items))
        half = len(items) // 2
        return [*self(items[:half]), *self(items[half:])]

    def _single(self, item: ItemT, exc: BaseException) -> OutT:
        if self.tiled is not None:
            try:
                return self.tiled(item)
            except Exception as again:
                if not is_out_of_memory(again):
                    raise
                free_memory()
                exc = again
        return self.exhausted(item, exc)


def exhausted_events(
    event: CloudEvent[Any], stage: str, *, trial: bool = False
) -> tuple[tuple[Topic, CloudEvent[Any]], tuple[Topic, CloudEvent[Any]]]:
    """The ``review`` event (reason ``RESOURCE_EXHAUSTED``, no candidate) and the ``metrics``
    event (outcome ``error``; ``trial`` when the item held a half-open breaker's trial permit,
    so it counts as a failed trial) of an item that ran out of memory even alone. An
    ``uploaded`` event (no context yet) gets its context from the upload and an empty trail."""
    data = event.data
    context = getattr(data, "context", None)
    if context is None:
        context = ItemContext(vendor_id=data.vendor_id, sku=data.sku,
                              operations=data.operations, original=data.image)
    mask = getattr(data, "mask", None) or getattr(data, "text_mask", None)
    review = ReviewData(
        context=context, stage=stage, reasons=[Reason.of(ReasonCode.RESOURCE_EXHAUSTED)],
        original=context.original, candidate=None, mask=mask,
        trail=getattr(data, "trail", None) or Trail(),
    )
    metrics = MetricsData(stage=stage, vendor_id=context.vendor_id, outcome="error",
                          latency_ms=0.0, batch_size=1, trial=trial)
    return (
        (Topic.REVIEW, derived_event(event, stage, Topic.REVIEW, review)),
        (Topic.METRICS, derived_event(event, stage, Topic.METRICS, metrics)),
    )

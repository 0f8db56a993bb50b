"""Batches bounded by a cost budget (pixels): which items a processor takes in one call.

A stage knows each item's cost before it calls its processor (input pixels for the detector
and the inpainter, output pixels for the upscaler); :func:`group_by_cost` packs the items into
groups, smallest first so that items of similar size share a group (little padding, few
distinct shapes), and no group's total exceeds the budget. An item whose own cost exceeds the
budget forms a group alone (the processor's tiled path, where it has one, bounds its memory).
:func:`map_in_groups` runs a batch function over those groups and puts the results back in the
items' order. The processors are per-image deterministic, so grouping never changes an output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy.typing as npt

__all__ = ["group_by_cost", "map_in_groups", "pixels"]

ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT")


def pixels(image: npt.NDArray[Any]) -> int:
    """Height × width of an HW or HWC image: the cost unit of the budget."""
    return int(image.shape[0]) * int(image.shape[1])


def group_by_cost(costs: Sequence[int], budget: int | None) -> list[list[int]]:
    """The indices of ``costs`` in groups whose totals stay within ``budget``.

    Items are taken in ascending cost (ties in index order) and added to the current group
    until the next one would exceed the budget. ``budget`` None or 0 means no bound: one group
    of every index, in cost order. Every index appears exactly once; no group is empty.
    """
    if any(cost < 0 for cost in costs):
        raise ValueError(f"group_by_cost: costs must be >= 0, got {list(costs)}.")
    if budget is not None and budget < 0:
        raise ValueError(f"group_by_cost: budget must be >= 0 or None, got {budget}.")
    order = sorted(range(len(costs)), key=lambda i: (costs[i], i))
    if not budget:
        return [order] if order else []
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index in order:
        if current and total + costs[index] > budget:
            groups.append(current)
            current, total = [], 0
        current.append(index)
        total += costs[index]
    if current:
        groups.append(current)
    return groups


def map_in_groups(
    run: Callable[[list[ItemT]], Sequence[OutT]],
    items: Sequence[ItemT],
    costs: Sequence[int],
    budget: int | None,
    on_group: Callable[[int], None] | None = None,
) -> list[OutT]:
    """``run`` over the groups of :func:`group_by_cost`, one call per group; the outputs in the
    order of ``items``. ``run`` must return one output per item it is given. ``on_group`` is
    told each group's total cost before its call (for metrics)."""
    if len(costs) != len(items):
        raise ValueError(
            f"map_in_groups: {len(items)} items but {len(costs)} costs; give one cost per item."
        )
    results: dict[int, OutT] = {}
    for group in group_by_cost(costs, budget):
        if on_group is not None:
            on_group(sum(costs[i] for i in group))
        outputs = run([items[i] for i in group])
        if len(outputs) != len(group):
            raise ValueError(
                f"map_in_groups: the batch function gave {len(outputs)} outputs for "
                f"{len(group)} items."
            )
        results.update(zip(group, outputs, strict=True))
    return [results[i] for i in range(len(items))]

"""Batches bounded by a pixel budget: grouping is a pure function of the costs."""

from __future__ import annotations

import numpy as np
import pytest

from processors.batching import group_by_cost, map_in_groups, pixels


@pytest.mark.parametrize(
    ("costs", "budget", "groups"),
    [
        ([], 100, []),
        ([], None, []),
        ([30, 10, 20], None, [[1, 2, 0]]),  # no bound: one group, smallest first
        ([30, 10, 20], 0, [[1, 2, 0]]),  # 0 means no bound too
        ([30, 10, 20], 60, [[1, 2, 0]]),  # exactly the budget fits
        ([30, 10, 20], 59, [[1, 2], [0]]),
        ([50, 50, 50, 50], 100, [[0, 1], [2, 3]]),  # ties keep index order
        ([500, 10, 10], 100, [[1, 2], [0]]),  # over the budget: alone
        ([500, 400], 100, [[1], [0]]),  # several over the budget: each alone
        ([10, 90, 20, 80, 30], 100, [[0, 2, 4], [3], [1]]),  # sorted, then packed greedily
        ([0, 0, 5], 5, [[0, 1, 2]]),
    ],
)
def test_groups_by_cost(costs, budget, groups):
    assert group_by_cost(costs, budget) == groups


@pytest.mark.parametrize("seed", range(5))
def test_every_index_once_and_no_group_over_the_budget_unless_alone(seed):
    rng = np.random.default_rng(seed)
    costs = [int(c) for c in rng.integers(1, 400, 40)]
    groups = group_by_cost(costs, 300)
    assert sorted(i for g in groups for i in g) == list(range(len(costs)))
    for group in groups:
        assert group
        assert len(group) == 1 or sum(costs[i] for i in group) <= 300
    flat = [costs[i] for g in groups for i in g]
    assert flat == sorted(flat)


@pytest.mark.parametrize(("costs", "budget"), [([-1], 10), ([1], -5)])
def test_negative_costs_or_budget_are_refused(costs, budget):
    with pytest.raises(ValueError, match="must be >= 0"):
        group_by_cost(costs, budget)


def test_map_in_groups_keeps_the_items_order_and_calls_once_per_group():
    calls: list[list[str]] = []

    def run(group: list[str]) -> list[str]:
        calls.append(group)
        return [s.upper() for s in group]

    items = ["ccc", "a", "bb", "dddd"]
    out = map_in_groups(run, items, [len(s) for s in items], 4)
    assert out == ["CCC", "A", "BB", "DDDD"]
    assert calls == [["a", "bb"], ["ccc"], ["dddd"]]


def test_map_in_groups_refuses_a_short_answer_and_mismatched_costs():
    with pytest.raises(ValueError, match="gave 0 outputs for 2 items"):
        map_in_groups(lambda group: [], ["a", "b"], [1, 1], None)
    with pytest.raises(ValueError, match="one cost per item"):
        map_in_groups(lambda group: group, ["a", "b"], [1], None)


def test_pixels_counts_height_times_width():
    assert pixels(np.zeros((3, 5, 3), np.uint8)) == 15
    assert pixels(np.zeros((4, 2), np.uint8)) == 8

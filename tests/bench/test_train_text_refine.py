"""The mask-refiner experiment (bench/train_text_refine.py): seeded data whose coarse masks
hold the targets, trimmed masks that stay inside the detector's, and a short run whose weights
load."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from rich.console import Console

from bench import train_text_refine, train_text_seg


@pytest.fixture(scope="module")
def pools():
    return train_text_seg.backgrounds(scenes=4)


def test_triples_are_seeded_and_masks_hold_the_targets(pools):
    first = train_text_refine.RefineSampler(pools, seed=3)
    second = train_text_refine.RefineSampler(pools, seed=3)
    for _ in range(6):
        image, coarse, change = first.triple()
        again = second.triple()
        assert np.array_equal(image, again[0])
        assert np.array_equal(coarse, again[1])
        assert image.dtype == np.uint8
        assert set(np.unique(coarse)) <= {0, 1}
        # Every crop carries text, and every changed pixel lies inside the coarse mask.
        assert (change > 0).any()
        assert not ((change > 0) & (coarse == 0)).any()
        # The coarse mask is grown beyond the overlay: there is something to trim.
        assert ((coarse > 0) & (change == 0)).any()


def test_refined_masks_stay_inside_and_keep_the_core(pools):
    torch.manual_seed(0)
    net = train_text_refine.MaskRefineNet().eval()
    image, coarse, _ = train_text_refine.RefineSampler(pools, seed=8).triple()
    mask = coarse * 255
    empty = np.zeros_like(mask)
    trimmed, none = train_text_refine.refine_masks(net, [image, image], [mask, empty], core=3)
    assert none.sum() == 0
    assert not ((trimmed > 0) & (mask == 0)).any()
    # Above any probability the network gives, only the mask's core (more than 3 px inside
    # it) is kept.
    kept = train_text_refine.refine_masks(net, [image], [mask], threshold=1.0, core=3)[0]
    inner = cv2.erode(coarse, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    assert inner.any()
    assert np.array_equal(kept > 0, inner > 0)
    with pytest.raises(ValueError, match="one mask per image"):
        train_text_refine.refine_masks(net, [image], [])


@pytest.mark.slow
def test_short_run_writes_loadable_weights(tmp_path):
    last = train_text_refine.train(10, tmp_path, threads=1, console=Console(quiet=True))
    assert 0.0 <= last["recall"] <= 1.0
    assert 0.0 <= last["precision"] <= 1.0
    net = train_text_refine.load_refiner(tmp_path / "text_refine.pt")
    assert not net.training
    meta = json.loads((tmp_path / "text_refine.json").read_text())
    assert meta["steps"] == 10
    assert meta["target_levels"] == train_text_refine.TARGET_LEVELS
    with pytest.raises(ValueError, match="not found"):
        train_text_refine.load_refiner(tmp_path / "missing.pt")

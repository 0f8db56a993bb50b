"""The text segmenter's training script: seeded data, what the targets mark, and a short run
whose weights the detector can load."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from rich.console import Console

from bench import train_text_seg
from processors.text_seg import load_text_seg


@pytest.fixture(scope="module")
def pools():
    return train_text_seg.backgrounds(scenes=4)


def test_sampler_is_seeded(pools):
    first = train_text_seg.Sampler(pools, seed=5)
    second = train_text_seg.Sampler(pools, seed=5)
    for _ in range(4):
        (a_image, a_target), (b_image, b_target) = first.sample(), second.sample()
        assert np.array_equal(a_image, b_image)
        assert np.array_equal(a_target, b_target)


def test_targets_mark_overlays_and_negatives_exist(pools):
    sampler = train_text_seg.Sampler(pools, seed=11)
    crops = [sampler.sample() for _ in range(40)]
    for image, target in crops:
        assert image.shape == (train_text_seg.CROP, train_text_seg.CROP, 3)
        assert image.dtype == np.uint8
        assert target.shape == image.shape[:2]
        assert set(np.unique(target)) <= {0, 1}
    marked = [float(target.mean()) for _, target in crops]
    assert any(m == 0.0 for m in marked)  # crops without text
    assert any(m > 0.005 for m in marked)
    assert max(marked) < 0.9  # text never covers a whole crop


def test_benchmark_images_are_not_training_data():
    names = " ".join(train_text_seg.SKIMAGE_FILES)
    for benchmark in ("astronaut", "chelsea", "coffee", "rocket", "grass", "gravel", "brick",
                      "motorcycle", "page", "text"):
        assert benchmark not in names


@pytest.mark.slow
def test_short_run_writes_loadable_weights(tmp_path):
    last = train_text_seg.train(10, tmp_path, threads=1, console=Console(quiet=True))
    assert 0.0 <= last["recall"] <= 1.0
    assert 0.0 <= last["precision"] <= 1.0
    net = load_text_seg(tmp_path / "text_seg.pt")
    assert not net.training
    meta = json.loads((tmp_path / "text_seg.json").read_text())
    assert meta["steps"] == 10
    assert meta["history"][-1]["step"] == 10


def test_too_few_steps_is_refused():
    with pytest.raises(SystemExit):
        train_text_seg.main(["--steps", "3", "--out", "/nonexistent"])


@pytest.mark.slow
def test_second_stage_goes_on_from_the_first_and_records_it(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    train_text_seg.train(10, first, threads=1, console=Console(quiet=True))
    train_text_seg.train(
        10, second, threads=1, console=Console(quiet=True),
        init=first / "text_seg.pt", seed=7, lr=5e-4,
    )
    meta = json.loads((second / "text_seg.json").read_text())
    digest = hashlib.sha256((first / "text_seg.pt").read_bytes()).hexdigest()
    assert meta["init"]["sha256"] == digest
    assert meta["init"]["record"]["steps"] == 10
    assert (meta["seed"], meta["lr"]) == (7, 5e-4)
    before = dict(load_text_seg(first / "text_seg.pt").named_parameters())
    after = dict(load_text_seg(second / "text_seg.pt").named_parameters())
    # It started from the first stage's weights (a fresh network differs from them by far
    # more) and moved them a little: 10 AdamW steps of at most about lr each.
    moved = [float((after[k] - before[k]).detach().abs().max()) for k in before]
    assert 0.0 < max(moved) < 20 * 5e-4


def test_init_must_exist():
    with pytest.raises(SystemExit):
        train_text_seg.main(["--steps", "10", "--init", "/nonexistent.pt", "--out", "/tmp/x"])

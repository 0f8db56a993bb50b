"""The quality corpus: seeded determinism, exact ground-truth masks, shapes of every case."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from bench import corpus as corpus_module


@pytest.fixture(scope="module")
def corpus():
    return corpus_module.build_corpus(seed=0)


def _digest(built) -> str:
    """One hash over every array of the corpus, in order."""
    hasher = hashlib.sha256()
    for case in built.text_cases:
        for array in (case.clean, case.image, case.mask):
            hasher.update(np.ascontiguousarray(array).tobytes())
        hasher.update(f"{case.name}|{case.font}".encode())
    for case in built.clean_cases:
        hasher.update(np.ascontiguousarray(case.image).tobytes())
    for case in built.sr_cases:
        for array in (case.hr, case.lr2, case.lr4):
            hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()


def test_same_seed_same_bytes(corpus):
    assert _digest(corpus_module.build_corpus(seed=0)) == _digest(corpus)


def test_bad_seed_is_rejected():
    with pytest.raises(ValueError, match="seed"):
        corpus_module.build_corpus(seed=-1)


def test_text_cases_cover_every_background_and_kind(corpus):
    names = {(c.background, c.kind) for c in corpus.text_cases}
    backgrounds = (*corpus_module.PHOTOS, *corpus_module.RENDERS)
    assert names == {(b, k) for b in backgrounds for k in corpus_module.KINDS}
    assert len({c.name for c in corpus.text_cases}) == len(corpus.text_cases)
    assert all(c.font for c in corpus.text_cases)


def test_ground_truth_mask_is_exactly_the_changed_pixels(corpus):
    for case in corpus.text_cases:
        assert case.image.dtype == np.uint8
        assert case.image.shape == case.clean.shape
        assert case.mask.dtype == np.uint8
        assert case.mask.shape == case.image.shape[:2]
        changed = (case.image != case.clean).any(axis=2)
        assert set(np.unique(case.mask).tolist()) <= {0, 255}, case.name
        assert np.array_equal(case.mask == 255, changed), case.name
        coverage = changed.mean()
        assert 0.0005 < coverage < 0.3, (case.name, coverage)


def test_clean_of_each_case_is_its_background(corpus):
    backgrounds = {c.name: c.image for c in corpus.clean_cases}
    for case in corpus.text_cases:
        assert np.array_equal(case.clean, backgrounds[case.background]), case.name


def test_clean_cases(corpus):
    assert len(corpus.clean_cases) >= 18
    assert len({c.name for c in corpus.clean_cases}) == len(corpus.clean_cases)
    for case in corpus.clean_cases:
        assert case.image.dtype == np.uint8
        assert case.image.shape[2:] == (3,)
        assert max(case.image.shape[:2]) <= corpus_module.MAX_LONG_SIDE
        assert case.image.std() > 0 or case.name == "render_flat", case.name


def test_sr_pairs(corpus):
    assert {c.name for c in corpus.sr_cases} == {*corpus_module.PHOTOS, *corpus_module.RENDERS}
    for case in corpus.sr_cases:
        height, width = case.hr.shape[:2]
        assert (height % 4, width % 4) == (0, 0), case.name
        assert case.lr2.shape == (height // 2, width // 2, 3)
        assert case.lr4.shape == (height // 4, width // 4, 3)
        assert case.hr.dtype == case.lr2.dtype == case.lr4.dtype == np.uint8
        # a bicubic downscale keeps the mean colour
        assert abs(float(case.lr4.mean()) - float(case.hr.mean())) < 2.0, case.name

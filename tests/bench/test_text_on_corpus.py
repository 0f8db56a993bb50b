"""TextDetector on a case of the quality corpus (``bench/corpus.py``) where a knob's effect is
known to show: the corpus builds in about 2 s and its cases are the benchmark's own."""

from __future__ import annotations

import numpy as np
import pytest
from corpus import build_corpus
from quality import detection_scores

from processors.text import TextDetector, TextDetectorConfig


@pytest.fixture(scope="module")
def grace_hopper_caption():
    (case,) = [c for c in build_corpus(seed=0).text_cases if c.name == "grace_hopper-caption"]
    return case


def test_ink_beyond_the_segmenters_reach_is_dropped(grace_hopper_caption):
    # A caption over grace hopper's dark uniform: the flag's red edge at the line's left end
    # and a piece of her name badge above it differ from the background like ink does, and
    # the unlimited mask takes them; the segmenter sees the caption's letters, not them.
    case = grace_hopper_caption
    (limited,) = TextDetector()([case.image])
    (unlimited,) = TextDetector(TextDetectorConfig(ink_reach=0))([case.image])
    recall, false_area = detection_scores(case.mask, limited.mask)
    recall_before, false_area_before = detection_scores(case.mask, unlimited.mask)
    assert recall == pytest.approx(recall_before, abs=0.005)
    assert false_area < 0.6 * false_area_before
    # Only whole pieces of ink are dropped: the limited mask is part of the unlimited one.
    assert not np.any((limited.mask > 0) & (unlimited.mask == 0))

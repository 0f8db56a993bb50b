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


def test_the_copyright_sign_the_segmenter_misses_is_found_in_the_image():
    # Seed 1's coffee watermark, "© bestdeals.store" at alpha 0.3-0.5 across the table's dark
    # corner and its wood: the segmenter draws the letters but not the "©" (its probability
    # there is about 0.01); the ring search finds it before the line's start.
    (case,) = [c for c in build_corpus(seed=1).text_cases if c.name == "coffee-watermark"]
    (found,) = TextDetector()([case.image])
    (without,) = TextDetector(TextDetectorConfig(rings=False))([case.image])
    # The "©" is the truth's top-left piece, in its own 40 px box (it starts the line).
    sign = np.zeros_like(case.mask)
    sign[33:73, 82:122] = case.mask[33:73, 82:122]
    assert np.count_nonzero(sign) > 250
    assert detection_scores(sign, without.mask)[0] < 0.2
    assert detection_scores(sign, found.mask)[0] > 0.9
    # The rest of the mask is the same, and nothing outside the sign's box was added.
    added = (found.mask > 0) & (without.mask == 0)
    outside = added.copy()
    outside[33:73, 82:122] = False
    assert added.any()
    assert not outside.any()


def test_a_watermark_the_detector_read_in_part_is_taken_whole():
    # Seed 2's coffee, "© bestdeals.store" in a serif face over the cup and the table: DBNet's
    # recognizer reads "best" (confidence 0.79), the segmenter draws the whole line but its
    # drawing reads at 0.68-0.76, under the 0.8 a line needs on its own. It continues the line
    # that was read, so it needs only 0.7.
    (case,) = [c for c in build_corpus(seed=2).text_cases if c.name == "coffee-multi"]
    (found,) = TextDetector()([case.image])
    (alone,) = TextDetector(TextDetectorConfig(segment_confirmed_confidence=0.8))([case.image])
    recall, false_area = detection_scores(case.mask, found.mask)
    recall_alone, _ = detection_scores(case.mask, alone.mask)
    assert recall_alone < 0.5
    assert recall > 0.85
    assert false_area < 0.006

"""Text removal (``processors.unblend`` after the inpainter) on a case of the quality corpus
(``bench/corpus.py``) where a failure was seen: the corpus builds in about 2 s and its cases
are the benchmark's own."""

from __future__ import annotations

import numpy as np
import pytest
from corpus import build_corpus

from processors.inpaint import InpaintConfig, Inpainter, dilate_mask, edit_region
from processors.quality import psnr
from processors.text import TextDetector, TextDetectorConfig
from processors.unblend import UnblendConfig, Unblender, estimate_ink


def test_opaque_digits_on_fur_are_not_recovered_as_an_overlay():
    # Seed 0's chelsea timestamp, orange digits on tan fur, with the detector's mask drawn
    # tight round them (no shadow growth): two of its parts fit a grey overlay at opacity
    # 0.16 well enough to pass the gate, and "recovering" them gave the digits back (17.6 dB
    # in the text region against 46.8 for the fill). The ink's colour must not come back.
    (case,) = [c for c in build_corpus(seed=0).text_cases if c.name == "chelsea-timestamp"]
    (found,) = TextDetector(TextDetectorConfig(shadow_reach=0.0))([case.image])
    region = edit_region(case.mask.shape, found.mask, image=case.image)
    fill = Inpainter(InpaintConfig(dilate=0))
    (filled,) = fill([case.image], [region])
    (out,) = Unblender(refill=fill)([case.image], [region], [filled])
    (unchecked,) = Unblender(UnblendConfig(ink_max_returned=1.0), refill=fill)(
        [case.image], [region], [filled]
    )
    text = dilate_mask(case.mask, 3)
    ink = estimate_ink(case.image.astype(np.float64), filled.astype(np.float64), region > 0)
    assert ink is not None

    def ink_share(image):
        offset = image[region > 0].astype(np.float64) - np.asarray(ink.colour)
        return float(np.mean(np.sqrt((offset * offset).sum(axis=1)) < 12))

    assert ink_share(unchecked) > 0.1  # the failure this guards against still shows
    assert ink_share(out) < 0.01
    assert psnr(case.clean, out, text) > psnr(case.clean, filled, text) - 1.0
    assert psnr(case.clean, out, text) > psnr(case.clean, unchecked, text) + 15.0
    assert np.array_equal(out[region == 0], case.image[region == 0])

"""Burned-in text detection with a pretrained detector (PP-OCRv4 DBNet), checked by its recognizer.

:class:`TextDetector` runs these passes over a batch of images (one module each):

1. **DBNet detection** (:mod:`~processors.text.dbnet`). Each image is detected at a working size
   (long side at most ``work_size``, short side at least ``min_side``, sides multiples of 32);
   the probability map gives rotated, unclipped boxes.
2. **Check** (:mod:`~processors.text.recognizer`). Each box is cut out upright and read by the
   PP-OCRv4 recognizer; it is text when at least ``min_chars`` characters are read with a mean
   confidence of at least ``min_confidence``. Boxes read as too few characters are read again
   merged with the boxes they touch (the detector splits faint or widely spaced text into
   glyphs).
3. **Second pass.** Faint overlays (grey at alpha 0.3 on a flat colour differs from it by about
   10 levels) get no response at all. The image is detected again at a short side of
   ``boost_side`` on a contrast-normalised copy (each channel minus its Gaussian blur, scaled by
   the inverse local RMS contrast, gain capped); its regions that the first pass's boxes do not
   already cover are checked more strictly (``boost_min_confidence``, ``boost_min_chars``),
   since normalisation makes textures look inked.
4. **Segmenter pass** (:mod:`~processors.text.segmented`, :mod:`~processors.text.line_ends`).
   Faint watermarks over *busy* photos get no DBNet response even on the normalised copy. A
   small network (:mod:`processors.text_seg`) marks what an overlay changed; its regions count
   when their shape reads as text, and accepted lines are followed beyond their ends (the "©"
   that starts most watermarks included). ``segmenter=False`` turns it off.
5. **Mask painting** (:mod:`~processors.text.paint`, :mod:`~processors.text.label`). Inside
   each accepted box the glyph pixels are those that differ from the background filled in
   around them; with the segmenter, only ink within ``ink_reach`` px of what it sees as text
   counts; a promo label behind the text is masked with it.
6. **Smooth backgrounds** (:mod:`processors.text_smooth`). Where the mask lies on a smooth
   render, the overlay pixels within ``smooth_reach`` px of it that it missed are added.

Line geometry (rotated boxes, their scaling and merging) is in :mod:`~processors.text.geometry`,
shape tests on glyph maps in :mod:`~processors.text.shapes`, the knobs and their ranges in
:mod:`~processors.text.config`, and the ONNX model files in :mod:`~processors.text.models`.

The CUDA path: ``device="cuda"`` uses onnxruntime's ``CUDAExecutionProvider`` when it is
available (it needs the ``onnxruntime-gpu`` build), and the CPU otherwise (the segmenter runs in
torch on CUDA when torch sees a GPU); :attr:`TextDetector.providers` says which one is active.
The result for an image is deterministic and does not depend on the rest of the batch.

Quality and cost on the seeded quality corpus (glyph-pixel recall, false-positive area, seconds
per megapixel) are in ``docs/models.md``, measured by ``bench/quality.py``. Known misses: faint
watermarks over busy photos whose segmented glyphs merge with background edges (the group's
shape then does not read as text).
"""

from processors.text.config import TextDetectorConfig
from processors.text.detector import TextDetector, TextResult
from processors.text.models import TextModelMissingError, find_model_dir

__all__ = [
    "TextDetector",
    "TextDetectorConfig",
    "TextModelMissingError",
    "TextResult",
    "find_model_dir",
]

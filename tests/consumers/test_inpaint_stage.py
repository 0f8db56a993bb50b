"""What the inpaint stage fills: the detector's text mask trimmed, the caller's object mask
grown (``processors.inpaint.edit_region``), and nothing outside their union; semi-transparent
overlays un-blended (``processors.unblend``) unless the settings turn it off."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from skimage import data

from consumers.codec import decode_image, encode_mask, encode_png
from consumers.dev.sample import generate_sample
from consumers.runner import Loaded
from consumers.settings import Settings
from consumers.stages import InpaintStage
from consumers.store import FilesystemStore
from processors.inpaint import (
    DEFAULT_DILATE,
    InpaintConfig,
    Inpainter,
    dilate_mask,
    edit_region,
    trim_text_mask,
)
from processors.quality import psnr, texture_ratio
from processors.text import TextDetector
from processors.unblend import UnblendConfig, Unblender
from schemas.events import (
    CloudEvent,
    ImageRef,
    ItemContext,
    Operations,
    RoutedData,
    RouteDecision,
    Topic,
    Trail,
    event_type,
)


def _routed(store, image, text, objects=None):
    """A routed event for ``image`` with its text mask (and a caller's object mask), all stored."""
    refs = {name: ImageRef(bucket="outputs", key=f"p/a/{name}.png")
            for name in ("image", "text", "objects")}
    store.put(refs["image"], encode_png(image), "image/png")
    store.put(refs["text"], encode_mask(text), "image/png")
    if objects is not None:
        store.put(refs["objects"], encode_mask(objects), "image/png")
    operations = Operations(object_mask=refs["objects"] if objects is not None else None)
    data = RoutedData(
        context=ItemContext(vendor_id="v", sku="s", operations=operations,
                            original=ImageRef(bucket="uploads", key="v/a.png")),
        image=refs["image"], text_mask=refs["text"], next_stage="inpaint",
        trail=Trail(route=RouteDecision(stages=["inpaint"], why=["test"])),
    )
    return CloudEvent[RoutedData](id="a", source="test", type=event_type(Topic.ROUTED),
                                  subject="a", data=data)


def test_text_masks_are_trimmed_not_grown_and_object_masks_grown(tmp_path):
    store = FilesystemStore(tmp_path / "store")
    rng = np.random.default_rng(0)
    image = rng.integers(60, 200, (64, 96, 3), dtype=np.uint8)
    text = np.zeros((64, 96), np.uint8)
    text[10:14, 10:40] = 255
    image[text > 0] = (250, 250, 20)  # ink, which the trim of the text mask keeps
    objects = np.zeros((64, 96), np.uint8)
    objects[40:50, 60:70] = 255
    event = _routed(store, image, text, objects)
    stage = InpaintStage(Settings(output_bucket="outputs", output_prefix="p"))
    loaded = stage.load(event, store)

    # The text mask is only trimmed of clean pixels on its edge, never grown; the object mask
    # is grown by the default.
    expected = trim_text_mask(image, text) | dilate_mask(objects, DEFAULT_DILATE)
    assert np.array_equal(loaded.mask, expected)
    assert not (loaded.mask[:30] & ~text[:30]).any()
    assert stage.inpainter.config.dilate == 0
    filled = stage.inpainter([image], [loaded.mask])[0]
    # Only the union changes: the text mask is not grown a second time.
    assert np.array_equal(filled[expected == 0], image[expected == 0])
    assert not np.array_equal(filled[text > 0], image[text > 0])


def _watermarked(base, alpha=0.4):
    """``base`` with white "SAMPLE" at ``alpha`` across it, and the mask of what changed."""
    layer = PILImage.new("L", (base.shape[1], base.shape[0]), 0)
    font = ImageFont.load_default(size=64)
    ImageDraw.Draw(layer).text((40, 100), "SAMPLE", font=font, fill=255)
    coverage = np.asarray(layer, np.float64)[..., None] / 255.0 * alpha
    image = np.rint(base * (1 - coverage) + 255.0 * coverage).astype(np.uint8)
    touched = np.where((image != base).any(axis=2), 255, 0).astype(np.uint8)
    return image, touched


@pytest.mark.slow
@pytest.mark.parametrize("unblend", [True, False])
def test_watermarks_are_unblended_unless_turned_off(tmp_path, unblend):
    store = FilesystemStore(tmp_path / "store")
    base = np.asarray(data.coffee())[50:350, 100:500].copy()
    image, touched = _watermarked(base)
    text = dilate_mask(touched, 2)
    stage = InpaintStage(Settings(output_bucket="outputs", output_prefix="p", unblend=unblend))
    event = _routed(store, image, text)
    loaded = stage.load(event, store)
    (output,) = stage.process([Loaded(event=event, payload=loaded, load_ms=0.0)])
    edited = decode_image(output.objects[0][1])
    filled = stage.inpainter([image], [loaded.mask])[0]
    region = loaded.mask
    if unblend:
        assert psnr(base, edited, region) > psnr(base, filled, region) + 3
        assert stage.version == "inpaint-patch-2+unblend-5"
    else:
        assert np.array_equal(edited, filled)
        assert stage.version == "inpaint-patch-2"
    (_, inpainted), *_ = output.events
    assert inpainted.data.trail.models["inpaint"] == stage.version


@pytest.mark.slow
def test_an_outlined_caption_is_not_unblended_back_into_place(tmp_path):
    """A white caption with a dark outline on a red photo (upload 26 of ``pixelgate sample``'s
    set), one of whose parts passes the overlay gate: solving for the background there would
    put the caption back. The texture check keeps the fill instead (checked with the ink step
    off, which may still un-mix the caption's edge), and the stage passes either way."""
    image, text, region = _sample_upload(tmp_path, 26)
    filled = Inpainter(InpaintConfig(dilate=0))([image], [region])[0]
    overlay_only = UnblendConfig(ink=False)
    unchecked = Unblender(UnblendConfig(max_texture=1e9, ink=False))([image], [region], [filled])[0]
    assert not np.array_equal(unchecked, filled)  # the case still reaches the texture check
    assert np.array_equal(Unblender(overlay_only)([image], [region], [filled])[0], filled)
    assert _stage_outcome(tmp_path, image, text) == "pass"


@pytest.mark.slow
def test_a_timestamp_near_the_backgrounds_colour_keeps_the_fill(tmp_path):
    """An orange date stamp over a red-orange photo (upload 100 of ``pixelgate sample big
    --count 120``): with ink and background this close, the ink step's coverage estimates are
    off and, unchecked, leave ghosts of the digits. The ink step's own texture check keeps the
    fill instead, and the stage passes."""
    image, text, region = _sample_upload(tmp_path, 100)
    inpainter = Inpainter(InpaintConfig(dilate=0))
    filled = inpainter([image], [region])[0]
    unchecked = Unblender(UnblendConfig(ink_max_texture=1e9), refill=inpainter)(
        [image], [region], [filled]
    )[0]
    assert texture_ratio(unchecked, region) > 2.0  # the case still reaches the texture check
    checked = Unblender(refill=inpainter)([image], [region], [filled])[0]
    assert texture_ratio(checked, region) <= 2.0
    assert _stage_outcome(tmp_path, image, text) == "pass"


def _sample_upload(tmp_path, number):
    """Upload ``number`` (1-based) of ``pixelgate sample``'s set: the decoded image, the text
    detector's mask and the region the stage fills for it."""
    items = generate_sample(tmp_path / "sample", number)
    upload = tmp_path / "sample" / "upload" / items[number - 1].file
    image = decode_image(upload.read_bytes())
    text = TextDetector()([image])[0].mask
    return image, text, edit_region(text.shape, text, image=image)


def _stage_outcome(tmp_path, image, text):
    """The default inpaint stage's outcome ("pass" or "review") for ``image`` routed with
    ``text``."""
    store = FilesystemStore(tmp_path / "store")
    stage = InpaintStage(Settings(output_bucket="outputs", output_prefix="p"))
    event = _routed(store, image, text)
    (output,) = stage.process([Loaded(event=event, payload=stage.load(event, store), load_ms=0.0)])
    return output.outcome

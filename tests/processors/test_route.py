"""The routing policy (processors.route): operations + text detection + image shape -> the
stages, in order, each with its reason; and the next stage after each one."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from processors.route import next_stage, plan_route
from schemas.events import EDIT_STAGES, ImageRef, Operations


@dataclass(frozen=True)
class Found:
    """A stand-in for a text detector's result."""

    boxes: tuple[tuple[int, int, int, int], ...] = ()
    coverage: float = 0.0

    @property
    def found(self) -> bool:
        return bool(self.boxes)


MASK = ImageRef(bucket="uploads", key="v/mask.png")
TEXT = Found(boxes=((1, 2, 30, 8), (1, 20, 30, 8)), coverage=0.0123456789)
NONE = Found()
SHAPE = (300, 400)


@pytest.mark.parametrize(
    ("operations", "detection", "stages", "why"),
    [
        (Operations(), NONE, [], ["no text detected"]),
        (Operations(), TEXT, ["inpaint"], ["text detected: 2 line(s), 1.23% of the image"]),
        (Operations(remove_text="on"), NONE, [], ["no text detected"]),
        (Operations(remove_text="off"), None, [], ["text removal off by request"]),
        (Operations(object_mask=MASK), NONE, ["inpaint"],
         ["no text detected", "object mask supplied"]),
        (Operations(object_mask=MASK), TEXT, ["inpaint"],
         ["text detected: 2 line(s), 1.23% of the image", "object mask supplied"]),
        (Operations(remove_text="off", object_mask=MASK), None, ["inpaint"],
         ["text removal off by request", "object mask supplied"]),
        (Operations(upscale_to=1600), NONE, ["upscale"],
         ["no text detected", "long side 400 px < requested 1600 px"]),
        (Operations(upscale_to=400), NONE, [],
         ["no text detected", "already 400 px >= requested 400 px"]),
        (Operations(upscale_to=800), TEXT, ["inpaint", "upscale"],
         ["text detected: 2 line(s), 1.23% of the image", "long side 400 px < requested 800 px"]),
    ],
)
def test_route_stages_and_reasons(operations, detection, stages, why):
    decision = plan_route(operations, detection, SHAPE)
    assert decision.stages == stages
    assert decision.why == why


@pytest.mark.parametrize(
    ("target", "scale", "upscale_to"),
    [(None, None, None), (300, None, None), (400, None, None), (401, 2, 401), (800, 2, 800),
     (801, 4, 801), (1600, 4, 1600), (4000, 4, 4000)],
)
def test_upscale_factor_is_the_smallest_that_reaches_the_target(target, scale, upscale_to):
    decision = plan_route(Operations(upscale_to=target), NONE, SHAPE)
    assert decision.upscale_scale == scale
    assert decision.upscale_to == upscale_to


@pytest.mark.parametrize(
    ("detection", "found", "coverage", "boxes"),
    [(None, False, 0.0, []), (NONE, False, 0.0, []),
     (TEXT, True, 0.012346, [(1, 2, 30, 8), (1, 20, 30, 8)])],
)
def test_detection_is_recorded_with_rounded_coverage(detection, found, coverage, boxes):
    decision = plan_route(Operations(), detection, SHAPE)
    assert decision.text_found is found
    assert decision.text_coverage == coverage
    assert decision.text_boxes == boxes


def test_a_portrait_image_is_measured_by_its_long_side():
    decision = plan_route(Operations(upscale_to=500), NONE, (450, 200))
    assert decision.stages == ["upscale"]
    assert decision.why[-1] == "long side 450 px < requested 500 px"


@pytest.mark.parametrize(
    ("stages", "after", "expected"),
    [
        ([], None, "finalize"),
        (["inpaint"], None, "inpaint"),
        (["upscale"], None, "upscale"),
        (["inpaint", "upscale"], None, "inpaint"),
        (["upscale", "inpaint"], None, "inpaint"),
        (["inpaint", "upscale"], "inpaint", "upscale"),
        (["inpaint", "upscale"], "upscale", "finalize"),
        (["inpaint"], "inpaint", "finalize"),
        (["inpaint"], "upscale", "finalize"),
    ],
)
def test_next_stage_follows_the_editing_order(stages, after, expected):
    assert next_stage(stages, after) == expected


def test_editing_stages_in_order():
    assert EDIT_STAGES == ("inpaint", "upscale")

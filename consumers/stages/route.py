"""preflight → routed: detect text, decide which stages the image needs, and why.

The decision itself is :func:`processors.route.plan_route`; this stage runs the detector (only
on the items whose text removal is not off), stores the text mask when text was found, and
publishes the decision.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from consumers.codec import decode_image, encode_mask
from consumers.configs import text_config
from consumers.derived import derived_event
from consumers.keys import TEXT_MASK, ObjectKeys
from consumers.runner import BATCH_PIXELS, Loaded, Output
from consumers.settings import Settings
from consumers.stages.common import (
    PNG,
    metrics_event,
    parse_event,
    share_ms,
    timed_trail,
)
from consumers.store import Store
from processors.batching import map_in_groups, pixels
from processors.route import next_stage, plan_route
from processors.tensors import Image
from processors.text import TextDetector, TextResult
from schemas.events import CloudEvent, ImageRef, PreflightData, RoutedData, Topic

__all__ = ["RouteStage"]


class RouteStage:
    """preflight → routed: detect text, decide which stages the image needs, and why.

    It has no tiled path: an item that runs out of memory alone goes to review with
    ``RESOURCE_EXHAUSTED`` (:mod:`consumers.oom`)."""

    name = "route"
    consumes = (Topic.PREFLIGHT,)

    def __init__(self, settings: Settings) -> None:
        self.keys = ObjectKeys.from_settings(settings)
        self.detector = TextDetector(text_config(settings))
        self.max_pixels = settings.knobs(self.name).max_batch_pixels

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:  # noqa: ARG002
        return parse_event(PreflightData, value)

    def load(self, event: CloudEvent[Any], store: Store) -> Image:
        return decode_image(store.get(event.data.image))

    def process(self, items: Sequence[Loaded[Image]]) -> list[Output]:
        started = time.perf_counter()
        wanted = [i for i, it in enumerate(items) if it.event.data.context.operations.remove_text
                  != "off"]
        images = [items[i].payload for i in wanted]
        found = map_in_groups(self.detector, images, [pixels(im) for im in images],
                              self.max_pixels, BATCH_PIXELS.labels(self.name).observe)
        detections = dict(zip(wanted, found, strict=True))
        shares = share_ms(items, started)
        return [
            self._output(item, detections.get(index), ms, len(items))
            for index, (item, ms) in enumerate(zip(items, shares, strict=True))
        ]

    def _output(
        self, item: Loaded[Image], detection: TextResult | None, ms: float, size: int
    ) -> Output:
        data: PreflightData = item.event.data
        ops = data.context.operations
        height, width = item.payload.shape[:2]
        decision = plan_route(ops, detection, (height, width))
        objects: list[tuple[ImageRef, bytes, str]] = []
        mask_ref = None
        if ops.remove_text != "off" and detection is not None and detection.found:
            mask_ref = self.keys.ref(item.event.subject, TEXT_MASK)
            objects.append((mask_ref, encode_mask(detection.mask), PNG))
        trail = timed_trail(
            data.trail,
            self.name,
            ms,
            route=decision,
            models={**data.trail.models, self.name: self.detector.version},
        )
        routed = RoutedData(
            context=data.context,
            image=data.image,
            alpha=data.alpha,
            text_mask=mask_ref,
            next_stage=next_stage(decision.stages, None),
            trail=trail,
        )
        return Output(
            outcome="pass",
            objects=tuple(objects),
            events=(
                (Topic.ROUTED, derived_event(item.event, self.name, Topic.ROUTED, routed)),
                metrics_event(
                    item.event, self.name, data.context.vendor_id, "pass", ms, size,
                    {"text_coverage": decision.text_coverage},
                ),
            ),
        )

"""routed → inpainted (or review): remove text and caller-masked objects."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consumers.breaker import BreakerBoard
from consumers.codec import decode_image, decode_mask, encode_mask, encode_png
from consumers.configs import text_removal
from consumers.gates import edit_gate
from consumers.keys import INPAINT_IMAGE, INPAINT_MASK, ObjectKeys
from consumers.runner import BATCH_PIXELS, Loaded, Output
from consumers.settings import Settings
from consumers.stages.common import (
    PNG,
    Edit,
    Figures,
    TrialPermits,
    deferred,
    edit_trail,
    gated_output,
    held_for_review,
    parse_event,
    share_ms,
)
from consumers.store import Store
from processors.batching import map_in_groups, pixels
from processors.inpaint import Inpainter
from processors.quality import measure_edits
from processors.removal import TextRemoval
from processors.route import next_stage
from processors.tensors import Image, Mask
from schemas.events import CloudEvent, InpaintedData, RoutedData, Topic

__all__ = ["InpaintStage"]


@dataclass(frozen=True)
class _InpaintInput:
    image: Image
    mask: Mask
    """What is filled: the text mask trimmed and the object mask grown, merged."""
    overlays: Mask
    """The text part of ``mask`` outside the caller's objects: where the fill may be replaced by
    the background un-blended from under a semi-transparent overlay."""


class InpaintStage:
    """routed → inpainted (or review): remove text and caller-masked objects.

    The removal is :class:`processors.removal.TextRemoval` (the detector's masks trimmed, the
    caller's object masks grown, filled, overlays un-blended unless the settings turn it off).
    Every item is gated (preservation outside the mask, seam, no worse than the input) with its
    vendor's thresholds; while the stage's circuit breaker is open, items go to review untouched
    (or the batch is held, by policy), and items beyond a half-open breaker's trials are held
    until the trials decide. It has no tiled path: an item that runs out of memory alone goes to
    review with ``RESOURCE_EXHAUSTED`` (:mod:`consumers.oom`).
    """

    name = "inpaint"
    consumes = (Topic.ROUTED,)

    def __init__(self, settings: Settings, board: BreakerBoard | None = None) -> None:
        self.keys = ObjectKeys.from_settings(settings)
        self.settings = settings
        self.board = board
        self.trials = TrialPermits()
        self.removal: TextRemoval = text_removal(settings)
        self.version = self.removal.version
        self.max_pixels = settings.knobs(self.name).max_batch_pixels

    @property
    def inpainter(self) -> Inpainter:
        """The inpainter that fills the regions (the un-blending refills with the one the stage
        was built with)."""
        return self.removal.inpainter

    @inpainter.setter
    def inpainter(self, inpainter: Inpainter) -> None:
        """Fill with ``inpainter`` from the next batch on (a model deployed while running)."""
        self.removal.inpainter = inpainter

    def settle_trial(self, event: CloudEvent[Any]) -> bool:
        """Whether the item was admitted as a half-open trial with no outcome out yet (its error
        is then that outcome); see :class:`~consumers.stages.common.TrialPermits`."""
        return self.trials.settle(event)

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:  # noqa: ARG002
        event = parse_event(RoutedData, value)
        return event if event.data.next_stage == self.name else None

    def load(self, event: CloudEvent[Any], store: Store) -> _InpaintInput:
        data: RoutedData = event.data
        image = decode_image(store.get(data.image))
        shape = (image.shape[0], image.shape[1])
        text = None if data.text_mask is None else decode_mask(store.get(data.text_mask), shape)
        objects = None
        if data.context.operations.object_mask is not None:
            # The caller's mask is in original-image coordinates; preflight may have resized,
            # so it is resampled (nearest) to the normalized size.
            objects = decode_mask(store.get(data.context.operations.object_mask), shape)
        regions = TextRemoval.regions(image, text, objects)
        return _InpaintInput(image, regions.fill, regions.overlays)

    def process(self, items: Sequence[Loaded[_InpaintInput]]) -> list[Output]:
        started = time.perf_counter()
        admission = self.trials.admit(self.board, self.name, items)
        chosen = [i for i, ok in enumerate(admission.allowed) if ok]
        images = [items[i].payload.image for i in chosen]
        masks = [items[i].payload.mask for i in chosen]
        overlays = [items[i].payload.overlays for i in chosen]
        fills = map_in_groups(self._fill, list(zip(images, masks, overlays, strict=True)),
                              [pixels(im) for im in images], self.max_pixels,
                              BATCH_PIXELS.labels(self.name).observe)
        edited = dict(zip(chosen, fills, strict=True))
        metrics = dict(zip(chosen, measure_edits(images, list(edited.values()), masks, dilate=0),
                           strict=True))
        shares = share_ms(items, started)
        outputs = []
        for index, (item, ms) in enumerate(zip(items, shares, strict=True)):
            data: RoutedData = item.event.data
            if admission.deferred[index]:
                outputs.append(deferred())
                continue
            if index not in edited:
                outputs.append(held_for_review(item, self.name, ms, len(items), data.text_mask))
                continue
            outputs.append(
                self._output(item, edited[index], metrics[index].to_dict(), ms, len(items),
                             trial=admission.trial[index])
            )
        self.trials.release(items)
        return outputs

    def _fill(self, group: list[tuple[Image, Mask, Mask]]) -> list[Image]:
        """One call of the removal over ``group`` (image, mask, overlays)."""
        images, masks, overlays = (list(part) for part in zip(*group, strict=True))
        return self.removal(images, masks, overlays)

    def _output(
        self, item: Loaded[_InpaintInput], result: Image, fig: Figures,
        ms: float, size: int, *, trial: bool,
    ) -> Output:
        data: RoutedData = item.event.data
        failed = edit_gate(fig, self.settings.gates_for(data.context.vendor_id))
        candidate = self.keys.ref(item.event.subject, INPAINT_IMAGE)
        mask_ref = self.keys.ref(item.event.subject, INPAINT_MASK)
        trail = edit_trail(data.trail, self.name, ms, fig, self.version, failed=bool(failed))
        edit = Edit(
            figures=fig, failed=failed, candidate=candidate, mask=mask_ref, trail=trail,
            objects=(
                (candidate, encode_png(result), PNG),
                (mask_ref, encode_mask(item.payload.mask), PNG),
            ),
        )

        def passed() -> tuple[Topic, InpaintedData]:
            return Topic.INPAINTED, InpaintedData(
                context=data.context, image=candidate, source=data.image, mask=mask_ref,
                alpha=data.alpha,
                next_stage=next_stage(trail.route.stages if trail.route else [], self.name),
                trail=trail,
            )

        return gated_output(item, self.name, edit, passed, ms=ms, size=size, trial=trial)

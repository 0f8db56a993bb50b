"""routed / inpainted → upscaled (or review): ×2/×4, then resize to the requested size."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from consumers.breaker import BreakerBoard
from consumers.codec import decode_image, encode_png
from consumers.configs import upscale_config
from consumers.gates import upscale_gate
from consumers.keys import UPSCALE_IMAGE, ObjectKeys
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
from processors.quality import measure_upscales
from processors.tensors import Image
from processors.upscale import UpscaleConfig, Upscaler, plan_scale, resize_long_side
from schemas.events import CloudEvent, InpaintedData, RoutedData, Topic, UpscaledData

__all__ = ["UpscaleStage"]


class UpscaleStage:
    """routed / inpainted → upscaled (or review): ×2/×4, then resize to the requested size.

    Gated and guarded by the circuit breaker like :class:`~consumers.stages.InpaintStage`.
    An item that runs out of memory alone is retried by :meth:`process_tiled`.
    """

    name = "upscale"
    consumes = (Topic.ROUTED, Topic.INPAINTED)

    def __init__(self, settings: Settings, board: BreakerBoard | None = None) -> None:
        self.keys = ObjectKeys.from_settings(settings)
        self.settings = settings
        self.board = board
        self.trials = TrialPermits()
        self.upscaler = Upscaler(upscale_config(settings))
        self.max_pixels = settings.knobs(self.name).max_batch_pixels

    def settle_trial(self, event: CloudEvent[Any]) -> bool:
        """Whether the item was admitted as a half-open trial with no outcome out yet (its error
        is then that outcome); see :class:`~consumers.stages.common.TrialPermits`."""
        return self.trials.settle(event)

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:
        model = RoutedData if topic is Topic.ROUTED else InpaintedData
        event = parse_event(model, value)
        return event if event.data.next_stage == self.name else None

    def load(self, event: CloudEvent[Any], store: Store) -> Image:
        return decode_image(store.get(event.data.image))

    def process(self, items: Sequence[Loaded[Image]]) -> list[Output]:
        return self._process(items, self.upscaler)

    def process_tiled(self, item: Loaded[Image]) -> Output:
        """One item with tile cores of half the side, one tile per forward pass: about an
        eighth of the device memory of a normal pass. The overlap still covers the network's
        receptive field, so the output is the same as the normal path's."""
        return self._process([item], self._small_tiles(self.upscaler.config))[0]

    @staticmethod
    @functools.lru_cache(maxsize=2)
    def _small_tiles(config: UpscaleConfig) -> Upscaler:
        """The upscaler of ``config`` with half-side tiles, one per pass (built once per
        config, so an upscaler swapped while running gets its own)."""
        return Upscaler(replace(config, tile=max(8, config.tile // 2), tile_batch=1))

    def _process(self, items: Sequence[Loaded[Image]], upscaler: Upscaler) -> list[Output]:
        started = time.perf_counter()
        admission = self.trials.admit(self.board, self.name, items)
        chosen = [i for i, ok in enumerate(admission.allowed) if ok]
        results = self._upscale(items, chosen, upscaler)
        metrics = dict(zip(chosen, measure_upscales([items[i].payload for i in chosen],
                                                    [results[i] for i in chosen]), strict=True))
        shares = share_ms(items, started)
        outputs = []
        for index, (item, ms) in enumerate(zip(items, shares, strict=True)):
            if admission.deferred[index]:
                outputs.append(deferred())
                continue
            if index not in results:
                mask = getattr(item.event.data, "mask", None)
                outputs.append(held_for_review(item, self.name, ms, len(items), mask))
                continue
            outputs.append(self._output(item, results[index], metrics[index].to_dict(), ms,
                                        len(items), trial=admission.trial[index]))
        self.trials.release(items)
        return outputs

    def _upscale(
        self, items: Sequence[Loaded[Image]], chosen: list[int], upscaler: Upscaler
    ) -> dict[int, Image]:
        """The ``chosen`` items upscaled to their requested size, by index (one batch per scale)."""
        targets = {i: int(items[i].event.data.context.operations.upscale_to) for i in chosen}
        results: dict[int, Image] = {}
        by_scale: dict[int, list[int]] = {}
        for index in chosen:
            height, width = items[index].payload.shape[:2]
            by_scale.setdefault(plan_scale(height, width, targets[index]), []).append(index)
        for scale, indices in sorted(by_scale.items()):
            images = [items[i].payload for i in indices]
            upscaled = map_in_groups(functools.partial(upscaler, scale=scale), images,
                                     [pixels(im) * scale * scale for im in images],
                                     self.max_pixels, BATCH_PIXELS.labels(self.name).observe)
            for index, image in zip(indices, upscaled, strict=True):
                results[index] = resize_long_side(image, targets[index])
        return results

    def _output(
        self, item: Loaded[Image], result: Image, fig: Figures, ms: float,
        size: int, *, trial: bool,
    ) -> Output:
        data = item.event.data
        failed = upscale_gate(fig, self.settings.gates_for(data.context.vendor_id))
        candidate = self.keys.ref(item.event.subject, UPSCALE_IMAGE)
        trail = edit_trail(data.trail, self.name, ms, fig, self.upscaler.version,
                           failed=bool(failed))
        edit = Edit(
            figures=fig, failed=failed, candidate=candidate, mask=getattr(data, "mask", None),
            trail=trail, objects=((candidate, encode_png(result), PNG),),
        )

        def passed() -> tuple[Topic, UpscaledData]:
            return Topic.UPSCALED, UpscaledData(
                context=data.context, image=candidate, source=data.image, alpha=data.alpha,
                next_stage="finalize", trail=trail,
            )

        return gated_output(item, self.name, edit, passed, ms=ms, size=size, trial=trial)

"""What every stage shares: derived events, metrics, per-item timing, the trail, and the
circuit breaker's admission of a batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from consumers.breaker import BreakerBoard, BreakerState, Permit
from consumers.derived import derived_event
from consumers.errors import BreakerOpenError, PoisonRecordError
from consumers.runner import DEFERRED, Loaded, Output
from schemas.events import (
    CloudEvent,
    ImageRef,
    MetricsData,
    Reason,
    ReviewData,
    Topic,
    Trail,
)
from schemas.reasons import ReasonCode

Figures = dict[str, float | None]

__all__ = [
    "PNG",
    "Admission",
    "Edit",
    "Figures",
    "TrialPermits",
    "admit",
    "deferred",
    "edit_trail",
    "gated_output",
    "held_for_review",
    "metrics_event",
    "parse_event",
    "share_ms",
    "timed_trail",
]

PNG = "image/png"
"""Content type of every object the stages write."""

def parse_event(model: type[BaseModel], value: bytes) -> CloudEvent[Any]:
    """A record's event with ``data`` of type ``model``; PoisonRecordError if it does not match."""
    try:
        return CloudEvent[model].model_validate_json(value)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise PoisonRecordError(f"event does not match {model.__name__}: {exc}") from None


def metrics_event(
    source: CloudEvent[Any],
    stage: str,
    vendor_id: str,
    outcome: Literal["pass", "fail", "error", "rejected", "skipped"],
    latency_ms: float,
    batch_size: int,
    figures: Figures | None = None,
    *,
    trial: bool = False,
) -> tuple[Topic, CloudEvent[Any]]:
    """The ``metrics`` event of one item (every stage publishes one per item)."""
    data = MetricsData(
        stage=stage,
        vendor_id=vendor_id,
        outcome=outcome,
        figures=figures or {},
        latency_ms=round(latency_ms, 3),
        batch_size=batch_size,
        trial=trial,
    )
    return Topic.METRICS, derived_event(source, stage, Topic.METRICS, data)


def share_ms(items: Sequence[Loaded[Any]], started: float) -> list[float]:
    """Each item's time in the stage: its own load time plus an equal share of the batch."""
    batch_ms = (time.perf_counter() - started) * 1000.0 / max(len(items), 1)
    return [item.load_ms + batch_ms for item in items]


def timed_trail(trail: Trail, stage: str, ms: float, **updates: Any) -> Trail:
    """``trail`` with the stage's time (and ``updates``) added."""
    timings = {**trail.timings_ms, stage: round(ms, 3)}
    return trail.model_copy(update={"timings_ms": timings, **updates})


@dataclass(frozen=True)
class Admission:
    """Which items of a batch the stage's circuit breaker lets through."""

    allowed: tuple[bool, ...]
    """Per item: edit it now."""
    trial: tuple[bool, ...]
    """Per item: admitted as a half-open trial."""
    deferred: tuple[bool, ...]
    """Per item: held back, neither edited nor sent to review (a half-open breaker whose trial
    permits are all taken, or the ``pause`` policy): the stage returns :func:`deferred` for it.
    An item neither allowed nor deferred goes to review untouched (:func:`held_for_review`)."""


_CLOSED_TO_EDITS = (BreakerState.OPEN, BreakerState.FORCED_OPEN)


def admit(
    board: BreakerBoard | None, stage: str, vendors: Sequence[str],
    held: Sequence[bool] | None = None,
) -> Admission:
    """Ask the breaker about each item, in order.

    With the ``pause`` policy an open scope raises :class:`BreakerOpenError` before any
    half-open permit is taken: the runner then holds the batch (partitions paused, nothing
    committed) and retries it with backoff. In HALF_OPEN the first items take the trial permits;
    the items beyond them are deferred until the trials decide (the runner holds them the same
    way and asks again): once CLOSED they are edited, once OPEN again they follow the policy.
    An item marked in ``held`` already holds a trial permit (see :class:`TrialPermits`): while
    its scope is HALF_OPEN it is a trial again without taking another.
    """
    policy = board.policy(stage) if board is not None else None
    if board is None or policy is None:
        none = (False,) * len(vendors)
        return Admission((True,) * len(vendors), none, none)
    if policy.when_open == "pause":
        states = [board.state(stage, vendor) for vendor in vendors]
        blocked = sorted({v for v, st in zip(vendors, states, strict=True)
                          if st in _CLOSED_TO_EDITS})
        if blocked:
            raise BreakerOpenError(
                f"{stage}: circuit breaker open for vendor(s) {', '.join(blocked)}; "
                "holding the batch until it half-opens"
            )
    holds = held if held is not None else (False,) * len(vendors)
    permits = [_permit(board, stage, vendor, holding)
               for vendor, holding in zip(vendors, holds, strict=True)]
    half_open = [p.state is BreakerState.HALF_OPEN for p in permits]
    pause = policy.when_open == "pause"
    return Admission(
        allowed=tuple(p.allowed for p in permits),
        trial=tuple(p.allowed and half for p, half in zip(permits, half_open, strict=True)),
        deferred=tuple(not p.allowed and (half or pause)
                       for p, half in zip(permits, half_open, strict=True)),
    )


def _permit(board: BreakerBoard, stage: str, vendor: str, held: bool) -> Permit:
    """The breaker's answer for one item; one already holding a trial permit keeps it while the
    scope is HALF_OPEN."""
    if held:
        state = board.state(stage, vendor)
        if state is BreakerState.HALF_OPEN:
            return Permit(True, state)
    return board.acquire(stage, vendor)


class TrialPermits:
    """A stage's items that hold a half-open trial permit and whose outcome is not out yet.

    A permit belongs to its item until the item's outcome is published. When ``process`` raises
    for a batch, the runner processes its items again one by one: a trial among them is
    admitted as a trial again without taking a second permit, so the batch's permits are not
    lost and the items beyond them stay deferred. A trial that raises on its own is
    dead-lettered, and the runner asks :meth:`settle` to mark its ``error`` metrics as the
    trial's outcome (a failed trial), the verdict the deferred items wait for. Thread-safe.
    """

    def __init__(self) -> None:
        self._held: dict[str, str] = {}  # image id -> vendor
        self._lock = threading.Lock()

    def admit(
        self, board: BreakerBoard | None, stage: str, items: Sequence[Loaded[Any]]
    ) -> Admission:
        """:func:`admit` for ``items``, each one holding a permit keeping it; the new trials
        hold theirs from now on. Permits whose scope has left HALF_OPEN are dropped (their
        verdict is in)."""
        subjects = [item.event.subject for item in items]
        vendors = [item.event.data.context.vendor_id for item in items]
        with self._lock:
            if board is not None:
                self._held = {s: v for s, v in self._held.items()
                              if board.state(stage, v) is BreakerState.HALF_OPEN}
            held = [s in self._held for s in subjects]
            admission = admit(board, stage, vendors, held)
            for subject, vendor, trial in zip(subjects, vendors, admission.trial, strict=True):
                if trial:
                    self._held[subject] = vendor
        return admission

    def release(self, items: Sequence[Loaded[Any]]) -> None:
        """Forget the permits of ``items``: their outputs carry their trial outcomes."""
        with self._lock:
            for item in items:
                self._held.pop(item.event.subject, None)

    def settle(self, event: CloudEvent[Any]) -> bool:
        """Whether the event's item holds a trial permit; forget it (the caller publishes the
        item's outcome, marked as a trial)."""
        with self._lock:
            return self._held.pop(event.subject, None) is not None


def deferred() -> Output:
    """An item held back by a half-open breaker (see :class:`Admission`): the runner stores and
    publishes nothing for it, leaves its batch uncommitted and processes it again later."""
    return Output(outcome=DEFERRED)


def held_for_review(
    item: Loaded[Any], stage: str, ms: float, size: int, mask: ImageRef | None
) -> Output:
    """An item the open breaker keeps from being edited: to review, untouched."""
    data = item.event.data
    review = ReviewData(
        context=data.context, stage=stage, reasons=[Reason.of(ReasonCode.BREAKER_OPEN)],
        original=data.context.original, candidate=None, mask=mask,
        trail=timed_trail(data.trail, stage, ms),
    )
    return Output(
        outcome="held",
        events=(
            (Topic.REVIEW, derived_event(item.event, stage, Topic.REVIEW, review)),
            metrics_event(item.event, stage, data.context.vendor_id, "skipped", ms, size),
        ),
    )


def edit_trail(
    trail: Trail, stage: str, ms: float, figures: Figures, version: str, *, failed: bool
) -> Trail:
    """``trail`` after an editing stage: its time, figures and model version, and the stage
    listed as applied unless a gate failed."""
    return timed_trail(
        trail,
        stage,
        ms,
        metrics={**trail.metrics, stage: figures},
        models={**trail.models, stage: version},
        applied=[*trail.applied, *([] if failed else [stage])],
    )


@dataclass(frozen=True, kw_only=True)
class Edit:
    """What an editing stage made of one item, before its gates decide where it goes."""

    figures: Figures
    """The quality figures the gates read."""
    failed: list[ReasonCode]
    """The gates it failed (empty: it passes)."""
    candidate: ImageRef
    """The edited image."""
    mask: ImageRef | None
    """The mask shown with it in review."""
    trail: Trail
    """The item's trail, this stage included."""
    objects: tuple[tuple[ImageRef, bytes, str], ...]
    """The objects to store (the candidate first)."""


def gated_output(
    item: Loaded[Any],
    stage: str,
    edit: Edit,
    passed: Callable[[], tuple[Topic, BaseModel]],
    *,
    ms: float,
    size: int,
    trial: bool,
) -> Output:
    """An edited item: to review with the failed gates' reasons, or on with ``passed()``'s
    topic and data; either way with its ``metrics`` event."""
    data = item.event.data
    vendor = data.context.vendor_id
    if edit.failed:
        review = ReviewData(
            context=data.context, stage=stage, reasons=[Reason.of(c) for c in edit.failed],
            original=data.context.original, candidate=edit.candidate, mask=edit.mask,
            figures=edit.figures, trail=edit.trail,
        )
        events = (
            (Topic.REVIEW, derived_event(item.event, stage, Topic.REVIEW, review)),
            metrics_event(item.event, stage, vendor, "fail", ms, size, edit.figures, trial=trial),
        )
        return Output(outcome="fail", objects=edit.objects, events=events)
    topic, out = passed()
    events = (
        (topic, derived_event(item.event, stage, topic, out)),
        metrics_event(item.event, stage, vendor, "pass", ms, size, edit.figures, trial=trial),
    )
    return Output(outcome="pass", objects=edit.objects, events=events)

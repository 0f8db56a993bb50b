"""Event models: the CloudEvents 1.0 envelope and the typed ``data`` of every topic.

Every event on every topic is a CloudEvents 1.0 JSON event in structured mode. ``subject`` is
the image id (the upload event's ``id``), carried unchanged through every stage; it is also the
Kafka message key. ``type`` is ``pixelgate.<topic>.v1``.

The ``uploaded`` event is the public input contract: marketplaces produce it, so it is validated
strictly (unknown fields are errors, ``subject`` must equal ``id``). Internal events carry an
:class:`ItemContext` (who uploaded what, and what they asked for) and a :class:`Trail` (what has
been done so far), so the final stage can report everything without reading back.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.reasons import ReasonCode

__all__ = [
    "BREAKER_CONTROL_TYPE",
    "EDIT_STAGES",
    "TOPIC_DATA",
    "BreakerControlData",
    "BreakerData",
    "CloudEvent",
    "ImageRef",
    "InpaintedData",
    "ItemContext",
    "MetricsData",
    "Operations",
    "PreflightData",
    "Reason",
    "RejectedData",
    "ResultData",
    "ReviewData",
    "RouteDecision",
    "RoutedData",
    "Topic",
    "Trail",
    "UploadedData",
    "UploadedEvent",
    "UpscaledData",
    "event_type",
]

_KEY_MAX = 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_EXTENSION_RE = re.compile(r"^[a-z0-9]{1,20}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"


class Topic(StrEnum):
    """Topic suffixes; the full name is ``<prefix><topic>`` (default prefix ``pixelgate.``)."""

    UPLOADED = "uploaded"
    PREFLIGHT = "preflight"
    ROUTED = "routed"
    INPAINTED = "inpainted"
    UPSCALED = "upscaled"
    RESULTS = "results"
    REJECTED = "rejected"
    REVIEW = "review"
    METRICS = "metrics"
    BREAKER = "breaker"
    DLQ = "dlq"


def event_type(topic: Topic) -> str:
    """The CloudEvents ``type`` of events on ``topic``."""
    return f"pixelgate.{topic.value}.v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageRef(_Strict):
    """A reference to an object in the object store."""

    bucket: str = Field(description="S3 bucket name (3-63 chars, lowercase, digits, '.', '-').")
    key: str = Field(
        min_length=1,
        max_length=_KEY_MAX,
        description="Object key: no leading '/', no '..' or empty segments, no control chars.",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET_RE.match(value):
            raise ValueError(
                f"bucket {value!r} is not a valid S3 bucket name (3-63 lowercase letters, digits,"
                " '.' or '-')"
            )
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if value.startswith("/"):
            raise ValueError("object key must not start with '/'")
        segments = value.split("/")
        if any(seg in ("", ".", "..") for seg in segments):
            raise ValueError("object key must not contain empty, '.' or '..' segments")
        if _CONTROL_RE.search(value):
            raise ValueError("object key must not contain control characters")
        return value


class Operations(_Strict):
    """What the uploader asks pixelgate to do."""

    remove_text: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="auto: remove text only if detected; on: always run removal; off: never.",
    )
    object_mask: ImageRef | None = Field(
        default=None, description="A mask image, 255 where pixels must be removed."
    )
    upscale_to: Annotated[int, Field(ge=64, le=16384)] | None = Field(
        default=None, description="Target long side in pixels; null for no upscaling."
    )


class UploadedData(_Strict):
    """``data`` of ``pixelgate.uploaded.v1``: the public input contract."""

    image: ImageRef
    vendor_id: str = Field(pattern=_ID_PATTERN)
    sku: str = Field(pattern=_ID_PATTERN)
    operations: Operations = Field(default_factory=Operations)


class Reason(_Strict):
    """A reason code with its human sentence."""

    code: ReasonCode
    text: str

    @classmethod
    def of(cls, code: ReasonCode) -> Reason:
        """The reason for ``code`` with its standard sentence."""
        return cls(code=code, text=code.text)


class ItemContext(_Strict):
    """Who uploaded what, and what they asked for; carried unchanged through every stage."""

    vendor_id: str
    sku: str
    operations: Operations
    original: ImageRef


EditStage = Literal["inpaint", "upscale"]
"""A stage that edits pixels, and so has quality gates and a circuit breaker."""

EDIT_STAGES: tuple[EditStage, ...] = get_args(EditStage)
"""The editing stages, in the order an image goes through them."""


class RouteDecision(_Strict):
    """The router's decision: which stages run, and why."""

    stages: list[EditStage]
    why: list[str]
    text_found: bool = False
    text_coverage: float = 0.0
    text_boxes: list[tuple[int, int, int, int]] = Field(default_factory=list)
    upscale_scale: int | None = None
    upscale_to: int | None = None


class Trail(_Strict):
    """Everything done to an item so far; each stage returns an extended copy."""

    preflight: dict[str, Any] | None = None
    route: RouteDecision | None = None
    applied: list[str] = Field(default_factory=list)
    metrics: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict)


NextStage = Literal[EditStage, "finalize"]


class PreflightData(_Strict):
    """``data`` of ``pixelgate.preflight.v1``: a normalized image ready for routing."""

    context: ItemContext
    image: ImageRef = Field(description="The normalized sRGB 8-bit image (PNG).")
    alpha: ImageRef | None = Field(default=None, description="Kept alpha channel, by policy.")
    trail: Trail


class RoutedData(_Strict):
    """``data`` of ``pixelgate.routed.v1``."""

    context: ItemContext
    image: ImageRef
    alpha: ImageRef | None = None
    text_mask: ImageRef | None = None
    next_stage: NextStage
    trail: Trail


class InpaintedData(_Strict):
    """``data`` of ``pixelgate.inpainted.v1``."""

    context: ItemContext
    image: ImageRef = Field(description="The edited image.")
    source: ImageRef = Field(description="The image before the edit.")
    mask: ImageRef = Field(description="The mask that was filled (text and object masks merged).")
    alpha: ImageRef | None = None
    next_stage: NextStage
    trail: Trail


class UpscaledData(_Strict):
    """``data`` of ``pixelgate.upscaled.v1``."""

    context: ItemContext
    image: ImageRef
    source: ImageRef
    alpha: ImageRef | None = None
    next_stage: NextStage
    trail: Trail


class ResultData(_Strict):
    """``data`` of ``pixelgate.results.v1``: the final image and everything applied."""

    context: ItemContext
    image: ImageRef
    mask: ImageRef | None = None
    trail: Trail


class RejectedData(_Strict):
    """``data`` of ``pixelgate.rejected.v1``: preflight refused the file."""

    context: ItemContext
    reasons: list[Reason] = Field(min_length=1)
    trail: Trail


class ReviewData(_Strict):
    """``data`` of ``pixelgate.review.v1``: a person must look at this item."""

    context: ItemContext
    stage: str
    reasons: list[Reason] = Field(min_length=1)
    original: ImageRef
    candidate: ImageRef | None = Field(
        default=None, description="The edit that failed its gate; null when none was made."
    )
    mask: ImageRef | None = None
    figures: dict[str, float | None] = Field(
        default_factory=dict, description="The gate's figures for this stage (see metrics)."
    )
    trail: Trail


class MetricsData(_Strict):
    """``data`` of ``pixelgate.metrics.v1``: one per item per stage."""

    stage: str
    vendor_id: str
    outcome: Literal["pass", "fail", "error", "rejected", "skipped"]
    figures: dict[str, float | None] = Field(default_factory=dict)
    latency_ms: float
    batch_size: int = Field(ge=1)
    trial: bool = Field(
        default=False, description="Admitted as a half-open trial of the circuit breaker."
    )


class BreakerData(_Strict):
    """``data`` of ``pixelgate.breaker.v1``: a circuit-breaker state transition."""

    stage: str
    vendor_id: str | None = None
    from_state: str
    to_state: str
    window: dict[str, float] = Field(default_factory=dict)
    reason: str


BREAKER_CONTROL_TYPE = "pixelgate.breaker.control.v1"
"""CloudEvents ``type`` of operator commands on the ``breaker`` topic (beside transitions)."""


class BreakerControlData(_Strict):
    """``data`` of ``pixelgate.breaker.control.v1``: an operator's command that every replica of
    the stage obeys (``pixelgate breaker force-open|disable|reset``)."""

    stage: str
    vendor_id: str | None = Field(
        default=None, description="The vendor scope; null = the stage's shared breaker."
    )
    action: Literal["force_open", "disable", "reset"]
    reason: str = Field(default="", max_length=1000, description="Why, for the audit trail.")


DataT = TypeVar("DataT", bound=BaseModel)


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 event in structured JSON mode with typed ``data``.

    Extension attributes are allowed (lowercase alphanumeric names of at most 20 characters, as
    the spec requires); unknown attributes with other names are errors.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=1024)
    type: str = Field(pattern=r"^pixelgate\.[a-z]+(\.[a-z]+)?\.v1$")
    subject: str = Field(min_length=1, max_length=256, description="The image id.")
    time: datetime | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: DataT

    @model_validator(mode="after")
    def _extensions(self) -> CloudEvent[DataT]:
        for name in self.model_extra or {}:
            if not _EXTENSION_RE.match(name):
                raise ValueError(
                    f"unknown attribute {name!r}: CloudEvents extension names are 1-20 lowercase "
                    "letters or digits"
                )
        return self


class UploadedEvent(CloudEvent[UploadedData]):
    """The upload event: the public input contract, validated strictly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["pixelgate.uploaded.v1"] = "pixelgate.uploaded.v1"

    @model_validator(mode="after")
    def _subject_is_id(self) -> UploadedEvent:
        if self.subject != self.id:
            raise ValueError("subject must equal id: the upload event's id is the image id")
        return self


TOPIC_DATA: dict[Topic, type[BaseModel]] = {
    Topic.UPLOADED: UploadedData,
    Topic.PREFLIGHT: PreflightData,
    Topic.ROUTED: RoutedData,
    Topic.INPAINTED: InpaintedData,
    Topic.UPSCALED: UpscaledData,
    Topic.RESULTS: ResultData,
    Topic.REJECTED: RejectedData,
    Topic.REVIEW: ReviewData,
    Topic.METRICS: MetricsData,
    Topic.BREAKER: BreakerData,
}
"""The ``data`` model of each topic (``dlq`` carries the original record bytes instead)."""

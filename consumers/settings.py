"""One frozen settings object, from ``PIXELGATE_*`` environment variables overlaid by YAML.

Precedence, highest first: the YAML file given with ``--config`` (or ``PIXELGATE_CONFIG``),
then environment variables, then defaults. Secrets are ``SecretStr``; log ``as_dict()``, which
redacts them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.breaker import BreakerPolicy
from consumers.errors import ConfigError
from schemas.events import EDIT_STAGES

__all__ = ["DEFAULT_BATCH_PIXELS", "BatchKnobs", "GateKnobs", "Settings", "load_settings"]

_REDACTED = "**********"


DEFAULT_BATCH_PIXELS = 4096 * 4096
"""The CPU default of ``max_batch_pixels``: four 2,048 px square images (preflight's largest),
or one ×2 upscale of such an image, per processor call."""


class BatchKnobs(BaseModel):
    """Micro-batching knobs of one stage: a batch is full or timed out, whichever comes first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch: int = Field(default=8, ge=1, le=1024, description="Most records per batch.")
    max_wait_ms: int = Field(default=50, ge=0, le=60_000, description="Longest wait to fill it.")
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Tries of a retriable failure before the dead letter."
    )
    max_batch_pixels: int | None = Field(
        default=DEFAULT_BATCH_PIXELS, ge=0,
        description="Most pixels one processor call takes (input pixels for text detection and"
        " inpainting, output pixels for upscaling); an image over it runs alone. 0 or None: no"
        " bound.",
    )


class GateKnobs(BaseModel):
    """Per-item quality gate thresholds (a failed gate sends the item to review)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_psnr_outside: float = Field(
        default=45.0, description="Preservation outside the dilated mask, dB (lossless = inf)."
    )
    min_ssim_outside: float = Field(default=0.99, description="Preservation SSIM outside the mask.")
    max_seam: float = Field(
        default=1.0,
        description="Seam score at the mask boundary (good fills measure 0-0.1, a flat mean-colour"
        " fill 1.2-2).",
    )
    min_upscale_psnr: float = Field(
        default=30.0, description="Upscale consistency: output downscaled vs input, dB."
    )
    max_texture_ratio: float = Field(
        default=2.0, gt=0.0,
        description="No worse than the input: an inpainted region may be busier (fine detail)"
        " than its surroundings by up to this factor, or as busy as it was before the edit,"
        " whichever is more (noise or garbage fails).",
    )
    max_detail_ratio: float = Field(
        default=1.5, gt=0.0,
        description="No worse than the input: fine detail of an upscale shrunk back, over the"
        " input's (noise and ringing raise it).",
    )


class Settings(BaseSettings):
    """Every runtime setting. Field ``x`` is read from ``PIXELGATE_X``."""

    model_config = SettingsConfigDict(
        env_prefix="PIXELGATE_", frozen=True, extra="forbid", env_nested_delimiter="__"
    )

    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle for TLS.")
    kafka_ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS).")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Client key (mTLS).")
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    kafka_max_poll_interval_ms: int = Field(
        default=300_000, ge=10_000,
        description="A batch that would outlive this pauses its partitions and keeps polling.",
    )
    kafka_join_timeout_ms: int | None = Field(
        default=None, ge=5_000,
        description="A consumer's start (connect, then join the group) still without an"
        " assignment after this is abandoned and tried again as a new member; unset: max poll"
        " interval + 3 session timeouts (a rebalance may wait for other members to finish the"
        " batch in hand).",
    )
    topic_partitions: int = Field(default=3, ge=1, description="Partitions of created topics.")
    topic_replication: int = Field(default=1, ge=1, description="Replication of created topics.")
    topic_prefix: str = "pixelgate."
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    output_bucket: str = "pixelgate"
    upload_bucket: str = "uploads"
    output_prefix: str = Field(default="pixelgate", description="Key prefix of every output.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    http_port: int = Field(
        default=8080, ge=0, le=65535,
        description="Worker health and metrics HTTP port (/healthz, /readyz, /metrics); 0 = off.",
    )
    device: str = Field(default="auto", description="'auto', 'cpu' or a torch device like cuda:0.")
    torch_threads: int = Field(
        default=1, ge=1, le=256,
        description="torch intra-op CPU threads. pixelgate works on several items and stages at"
        " once, and its torch work is many small ops on crops and tiles: one thread each is"
        " fastest (two threads made patch inpainting 15x slower on a busy 2-core machine).",
    )
    batch: BatchKnobs = Field(default_factory=BatchKnobs)
    stage_batch: dict[str, BatchKnobs] = Field(
        default_factory=dict, description="Per-stage overrides of `batch`, by stage name."
    )
    text_segmenter: bool = Field(
        default=True,
        description="Run the learned text segmenter after the PP-OCRv4 detector (finds faint,"
        " rotated watermarks over busy photos; its forward pass is the larger part of detection's"
        " time on a CPU: docs/models.md).",
    )
    inpaint_method: Literal["patch", "telea", "ns", "torchscript"] = Field(
        default="patch",
        description="Inpainting backend: multi-scale PatchMatch (torch), OpenCV's telea/ns, or a"
        " user TorchScript model (`inpaint_model`).",
    )
    inpaint_model: Path | None = Field(
        default=None, description="TorchScript inpainting model (image, mask -> image) to deploy."
    )
    inpaint_thin: float = Field(
        default=6.0,
        ge=0.0,
        description="`patch`: holes at most this many px from edge to middle, on a textured"
        " background, are filled by OpenCV's frequency-selective reconstruction (on the CPU,"
        " about twice the fill's time; better on photos' strokes); 0 = patch synthesis only.",
    )
    unblend: bool = Field(
        default=True,
        description="After text is filled, recover the pixels under semi-transparent neutral"
        " overlays (watermarks) by solving for the background instead of keeping the fill,"
        " un-mix the antialiased edges of single-colour text (timestamps) and fill their cores"
        " again (processors.unblend; its cost beside the fill's: `python -m bench.quality"
        " --only speed`, docs/models.md).",
    )
    upscale_method: Literal["learned", "lanczos", "torchscript"] = Field(
        default="learned",
        description="Upscaling backend: the shipped network, Lanczos, or a user TorchScript model"
        " (`upscale_model`).",
    )
    upscale_model: Path | None = Field(
        default=None, description="TorchScript upscaling model (image -> image x2/x4) to deploy."
    )
    breakers: dict[str, BreakerPolicy] = Field(
        default_factory=lambda: {"inpaint": BreakerPolicy(), "upscale": BreakerPolicy()},
        description="Circuit-breaker policy per editing stage; a stage left out has no breaker.",
    )
    gates: GateKnobs = Field(default_factory=GateKnobs)
    vendor_gates: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per-vendor overrides of `gates`, by vendor id (only the fields given).",
    )
    preflight: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the preflight policy's defaults."
    )
    vendor_preflight: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-vendor preflight overrides, by vendor id."
    )

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        for stage, method, model in (
            ("inpaint", self.inpaint_method, self.inpaint_model),
            ("upscale", self.upscale_method, self.upscale_model),
        ):
            if method == "torchscript" and model is None:
                raise ValueError(
                    f"{stage}_method is 'torchscript' but {stage}_model is not set; give the path"
                    f" of the TorchScript file (PIXELGATE_{stage.upper()}_MODEL)."
                )
            if model is not None and not model.is_file():
                raise ValueError(f"{stage}_model: no such file: {model}")
        join = self.kafka_join_timeout_ms
        if join is not None and join < 3 * self.kafka_session_timeout_ms:
            # A member that joins again may wait for the one it abandoned to expire (a session
            # timeout) and for the broker's join delay: shorter, every try would time out too.
            raise ValueError(
                f"kafka_join_timeout_ms ({join}) must be at least 3 session timeouts"
                f" ({3 * self.kafka_session_timeout_ms}): a new member may wait for an abandoned"
                " one to expire."
            )
        unknown = sorted(set(self.breakers) - set(EDIT_STAGES))
        if unknown:
            raise ValueError(
                f"breakers: no circuit breaker for stage(s) {unknown}; only the editing stages"
                f" ({', '.join(EDIT_STAGES)}) have one."
            )
        return self

    def torch_device(self) -> str:
        """The torch device to run models on: ``device``, with ``auto`` resolved."""
        if self.device != "auto":
            return self.device
        import torch  # noqa: PLC0415 - only the model stages need torch; keep settings light

        return "cuda" if torch.cuda.is_available() else "cpu"

    @model_validator(mode="after")
    def _check_vendor_gates(self) -> Settings:
        for vendor, override in self.vendor_gates.items():
            try:
                self.gates_for(vendor)
            except ValidationError as exc:
                fields = ", ".join(str(e["loc"][0]) for e in exc.errors())
                raise ValueError(
                    f"vendor_gates.{vendor}: bad gate field(s) {fields}; known fields: "
                    f"{', '.join(GateKnobs.model_fields)} (got {sorted(override)})"
                ) from None
        return self

    def gates_for(self, vendor_id: str) -> GateKnobs:
        """The gate thresholds for ``vendor_id``: ``gates`` with its ``vendor_gates`` applied."""
        override = self.vendor_gates.get(vendor_id)
        if not override:
            return self.gates
        return GateKnobs(**{**self.gates.model_dump(), **override})

    def join_timeout_s(self) -> float:
        """Seconds a consumer waits for its group join before it leaves and joins again."""
        if self.kafka_join_timeout_ms is not None:
            return self.kafka_join_timeout_ms / 1000.0
        return (self.kafka_max_poll_interval_ms + 3 * self.kafka_session_timeout_ms) / 1000.0

    def knobs(self, stage: str) -> BatchKnobs:
        """The batching knobs of ``stage``."""
        return self.stage_batch.get(stage, self.batch)

    def as_dict(self) -> dict[str, Any]:
        """Every setting, with secrets redacted: this is what gets logged."""
        data = self.model_dump(mode="json")
        for name in ("s3_access_key", "s3_secret_key", "kafka_sasl_password"):
            if data.get(name) is not None:
                data[name] = _REDACTED
        return data


def load_settings(config_file: Path | None = None) -> Settings:
    """Settings from the environment, overlaid by ``config_file`` (or ``$PIXELGATE_CONFIG``).

    Raises :class:`ConfigError` with a readable message on a missing file, bad YAML or an
    invalid value.
    """
    path = config_file or (Path(p) if (p := os.environ.get("PIXELGATE_CONFIG")) else None)
    overlay: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of setting: value")
        overlay = dict(loaded or {})
    try:
        return Settings(**overlay)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None

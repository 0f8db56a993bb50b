"""pixelgate schemas: event models, reason codes, generated JSON Schema. Depends on nothing."""

from schemas.reasons import REASON_TEXT, ReasonCode

__all__ = ["REASON_TEXT", "ReasonCode"]

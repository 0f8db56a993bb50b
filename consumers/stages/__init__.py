"""The stage graph: preflight → route → inpaint / upscale → finalize, with terminal topics.

Every stage is listed here, in one package (no import-time registries), one module each::

    uploaded ─► preflight ─┬─► rejected                                   (terminal)
                           └─► preflight ─► route ─► routed ─┬─► inpaint ─► inpainted ─┐
                                                             ├─► upscale ◄─────────────┤
                                                             │      └─► upscaled ──────┤
                                                             └─► finalize ◄────────────┘
                                                                    └─► results       (terminal)
    any gate that fails ─► review (terminal);  anything unreadable ─► dlq (terminal)

Each internal event names its ``next_stage``; a stage consumes every topic that can feed it and
skips records meant for another stage. Object keys are deterministic
(:mod:`consumers.keys`), so a replayed record rewrites identical objects. Every stage publishes
one ``metrics`` event per item. The routing policy is :mod:`processors.route`, the gates
:mod:`consumers.gates`, the settings-to-processor mapping :mod:`consumers.configs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from consumers.breaker import BreakerBoard
from consumers.runner import Stage
from consumers.settings import Settings
from consumers.stages.finalize import FinalizeStage
from consumers.stages.inpaint import InpaintStage
from consumers.stages.preflight import PreflightStage
from consumers.stages.route import RouteStage
from consumers.stages.upscale import UpscaleStage
from schemas.events import EDIT_STAGES

__all__ = [
    "STAGE_NAMES",
    "FinalizeStage",
    "InpaintStage",
    "PreflightStage",
    "RouteStage",
    "UpscaleStage",
    "build_stages",
]

STAGE_NAMES: tuple[str, ...] = ("preflight", "route", *EDIT_STAGES, "finalize")
"""Every stage, in pipeline order."""

_FACTORIES: dict[str, type[Any]] = {
    "preflight": PreflightStage,
    "route": RouteStage,
    "inpaint": InpaintStage,
    "upscale": UpscaleStage,
    "finalize": FinalizeStage,
}


def build_stages(
    settings: Settings, names: Sequence[str] = STAGE_NAMES, board: BreakerBoard | None = None
) -> list[Stage[Any]]:
    """The stages called ``names``, in pipeline order; unknown names raise ValueError.
    ``board`` is the circuit breaker the editing stages consult (None: no breaker). Sets torch's
    CPU thread count (``torch_threads``) for the process first: stages are built once, at
    start-up, in every mode."""
    torch.set_num_threads(settings.torch_threads)
    unknown = [n for n in names if n not in _FACTORIES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGE_NAMES)}")
    return [
        _FACTORIES[n](settings, board) if n in EDIT_STAGES else _FACTORIES[n](settings)
        for n in STAGE_NAMES
        if n in names
    ]

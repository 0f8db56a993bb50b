"""The per-item gates of the editing stages: figures in, the reason codes of failed gates out."""

from __future__ import annotations

from consumers.settings import GateKnobs
from schemas.reasons import ReasonCode

__all__ = ["edit_gate", "upscale_gate"]


def edit_gate(figures: dict[str, float | None], gates: GateKnobs) -> list[ReasonCode]:
    """Reason codes of every edit gate the figures fail (empty = pass).

    Preservation outside the mask (PSNR and SSIM near-lossless), the seam at the mask boundary,
    and "no worse than the input": the filled region must not be busier than its surroundings
    by more than ``max_texture_ratio`` (noise, garbage, text left in place).
    """
    failed = []
    psnr_out = figures.get("psnr_outside")
    ssim_out = figures.get("ssim_outside")
    seam = figures.get("seam")
    texture = figures.get("texture_out")
    if (psnr_out is not None and psnr_out < gates.min_psnr_outside) or (
        ssim_out is not None and ssim_out < gates.min_ssim_outside
    ):
        failed.append(ReasonCode.PRESERVATION_FAILED)
    if seam is not None and seam > gates.max_seam:
        failed.append(ReasonCode.SEAM_VISIBLE)
    if texture is not None and texture > gates.max_texture_ratio:
        failed.append(ReasonCode.WORSE_THAN_INPUT)
    return failed


def upscale_gate(figures: dict[str, float | None], gates: GateKnobs) -> list[ReasonCode]:
    """Reason codes of every upscale gate the figures fail (empty = pass): consistency (the
    output shrunk back matches the input) and "no worse than the input" (no added noise)."""
    failed = []
    consistency = figures.get("consistency_psnr")
    detail = figures.get("detail_ratio")
    if consistency is not None and consistency < gates.min_upscale_psnr:
        failed.append(ReasonCode.UPSCALE_INCONSISTENT)
    if detail is not None and detail > gates.max_detail_ratio:
        failed.append(ReasonCode.WORSE_THAN_INPUT)
    return failed

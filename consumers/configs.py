"""Settings to processor configs: the one mapping the workers, embedded mode and the
single-stage tools build their processors through, so every ``PIXELGATE_*`` knob applies to all."""

from __future__ import annotations

from consumers.settings import Settings
from processors.inpaint import InpaintConfig
from processors.removal import TextRemoval
from processors.text import TextDetectorConfig
from processors.upscale import UpscaleConfig

__all__ = ["inpaint_config", "text_config", "text_removal", "upscale_config"]


def text_config(settings: Settings) -> TextDetectorConfig:
    """The text detector the settings ask for (segmenter on or off, device)."""
    cuda = settings.torch_device().startswith("cuda")
    return TextDetectorConfig(device="cuda" if cuda else "cpu", segmenter=settings.text_segmenter)


def inpaint_config(settings: Settings) -> InpaintConfig:
    """The inpainter the settings ask for (method, user model, device, thin-hole fill)."""
    model = settings.inpaint_model if settings.inpaint_method == "torchscript" else None
    return InpaintConfig(method=settings.inpaint_method, model=model,
                         device=settings.torch_device(), thin=settings.inpaint_thin)


def upscale_config(settings: Settings) -> UpscaleConfig:
    """The upscaler the settings ask for (method, user model, device)."""
    return UpscaleConfig(method=settings.upscale_method, model=settings.upscale_model,
                         device=settings.torch_device())


def text_removal(settings: Settings) -> TextRemoval:
    """The text removal the settings ask for: their inpainter, un-blending on or off."""
    return TextRemoval.from_config(inpaint_config(settings), unblend=settings.unblend)

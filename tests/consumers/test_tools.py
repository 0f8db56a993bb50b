"""The single-stage tools build their processors from the settings (consumers.configs), so
``PIXELGATE_*`` variables reach detect-text, remove-text, inpaint and upscale as they reach the
pipeline's stages. The processors are replaced by recorders: what is checked is the config each
tool built, not the pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from consumers import cli, tools
from consumers.codec import encode_mask, encode_png
from processors import removal

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("PIXELGATE_DEVICE", "PIXELGATE_INPAINT_METHOD", "PIXELGATE_INPAINT_THIN",
                 "PIXELGATE_TEXT_SEGMENTER", "PIXELGATE_UNBLEND", "PIXELGATE_UPSCALE_METHOD"):
        monkeypatch.delenv(name, raising=False)


@dataclass(frozen=True)
class _Found:
    mask: np.ndarray
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    coverage: float = 0.0

    @property
    def found(self) -> bool:
        return bool(self.boxes)


class _Recorder:
    """Stands in for a processor class: records the config it was built with."""

    built: list[_Recorder]

    def __init__(self, config):
        self.config = config
        self.version = "recorded"
        self.built.append(self)

    def __call__(self, images, *args, **kwargs):
        return [np.array(image) for image in images]


@pytest.fixture
def recorders(monkeypatch):
    """Every processor class the tools build, replaced; ``built[name]`` lists the instances."""
    built: dict[str, list[_Recorder]] = {}

    def recorder(name, call=None):
        cls = type(name, (_Recorder,), {"built": built.setdefault(name, [])})
        if call is not None:
            cls.__call__ = call
        return cls

    detector = recorder("TextDetector", lambda self, images: [
        _Found(np.zeros(image.shape[:2], np.uint8)) for image in images])
    monkeypatch.setattr(tools, "TextDetector", detector)
    monkeypatch.setattr(tools, "Inpainter", recorder("Inpainter"))
    monkeypatch.setattr(removal, "Inpainter", recorder("RemovalInpainter"))
    monkeypatch.setattr(tools, "Upscaler", recorder("Upscaler"))
    return built


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "in" / "a.png"
    path.parent.mkdir()
    path.write_bytes(encode_png(np.full((24, 32, 3), 128, np.uint8)))
    mask = tmp_path / "mask.png"
    mask.write_bytes(encode_mask(np.zeros((24, 32), np.uint8)))
    return path


def _run(argv, image_file):
    out = image_file.parent.parent / "out"
    return cli.main([argv[0], str(image_file), *argv[1:], "--out", str(out)])


def test_detect_text_honours_device_and_segmenter(monkeypatch, recorders, image_file):
    monkeypatch.setenv("PIXELGATE_DEVICE", "cuda:1")
    monkeypatch.setenv("PIXELGATE_TEXT_SEGMENTER", "false")
    assert _run(["detect-text"], image_file) == 0
    (detector,) = recorders["TextDetector"]
    assert detector.config.device == "cuda"
    assert detector.config.segmenter is False


def test_remove_text_honours_inpaint_and_unblend_settings(monkeypatch, recorders, image_file):
    monkeypatch.setenv("PIXELGATE_DEVICE", "cuda:1")
    monkeypatch.setenv("PIXELGATE_INPAINT_METHOD", "telea")
    monkeypatch.setenv("PIXELGATE_INPAINT_THIN", "2.5")
    monkeypatch.setenv("PIXELGATE_UNBLEND", "false")
    assert _run(["remove-text"], image_file) == 0
    (detector,) = recorders["TextDetector"]
    (fill,) = recorders["RemovalInpainter"]
    assert detector.config.device == "cuda"
    assert (fill.config.method, fill.config.device, fill.config.thin) == ("telea", "cuda:1", 2.5)
    assert fill.config.dilate == 0


def test_remove_text_unblends_by_default(monkeypatch, recorders, image_file):
    built = []
    monkeypatch.setattr(removal, "Unblender", lambda refill: built.append(refill) or refill)
    assert _run(["remove-text"], image_file) == 0
    (fill,) = recorders["RemovalInpainter"]
    assert built == [fill]
    assert fill.config.method == "patch"


def test_inpaint_honours_method_device_and_thin(monkeypatch, recorders, image_file):
    monkeypatch.setenv("PIXELGATE_DEVICE", "cuda:1")
    monkeypatch.setenv("PIXELGATE_INPAINT_METHOD", "ns")
    monkeypatch.setenv("PIXELGATE_INPAINT_THIN", "0")
    mask = image_file.parent.parent / "mask.png"
    assert _run(["inpaint", "--mask", str(mask)], image_file) == 0
    (inpainter,) = recorders["Inpainter"]
    assert (inpainter.config.method, inpainter.config.device, inpainter.config.thin) == (
        "ns", "cuda:1", 0.0)


def test_upscale_honours_method_and_device(monkeypatch, recorders, image_file):
    monkeypatch.setenv("PIXELGATE_DEVICE", "cuda:1")
    monkeypatch.setenv("PIXELGATE_UPSCALE_METHOD", "lanczos")
    assert _run(["upscale", "--scale", "2"], image_file) == 0
    (upscaler,) = recorders["Upscaler"]
    assert (upscaler.config.method, upscaler.config.device) == ("lanczos", "cuda:1")


@pytest.mark.parametrize(
    ("argv", "variable", "value"),
    [
        (["detect-text"], "PIXELGATE_TEXT_SEGMENTER", "maybe"),
        (["remove-text"], "PIXELGATE_INPAINT_METHOD", "bogus"),
        (["inpaint", "--mask", "MASK"], "PIXELGATE_INPAINT_THIN", "-1"),
        (["upscale", "--scale", "2"], "PIXELGATE_UPSCALE_METHOD", "bogus"),
    ],
)
def test_an_invalid_setting_stops_the_tool_with_one_line(
    monkeypatch, recorders, image_file, capsys, argv, variable, value
):
    monkeypatch.setenv(variable, value)
    mask = str(image_file.parent.parent / "mask.png")
    assert _run([a.replace("MASK", mask) for a in argv], image_file) == 2
    err = capsys.readouterr().err
    assert err.startswith("pixelgate: error:")
    assert variable.removeprefix("PIXELGATE_").lower() in err
    assert not any(recorders.values())

"""Upscaler, plan_scale and resize_long_side: the processor suite and quality by metrics."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image as PILImage

from processors.quality import measure_upscales, psnr, ssim
from processors.tensors import from_tensor, to_tensor
from processors.upscale import (
    UpscaleConfig,
    UpscaleNet,
    Upscaler,
    load_learned_weights,
    plan_scale,
    resize_long_side,
)


@pytest.fixture(scope="module")
def upscaler() -> Upscaler:
    return Upscaler()


@pytest.fixture(scope="module")
def lanczos() -> Upscaler:
    return Upscaler(UpscaleConfig(method="lanczos"))


@pytest.fixture(scope="module", params=["learned", "lanczos"])
def any_upscaler(request, upscaler, lanczos) -> Upscaler:
    return upscaler if request.param == "learned" else lanczos


@pytest.fixture(scope="module")
def natural(astronaut) -> np.ndarray:
    """A 96 x 128 natural crop (face, hair, suit)."""
    return astronaut[40:136, 150:278]


def bicubic_down(image: np.ndarray, scale: int) -> np.ndarray:
    """The benchmark's degradation: Pillow's antialiased bicubic resize."""
    height, width = image.shape[:2]
    small = PILImage.fromarray(image).resize(
        (width // scale, height // scale), PILImage.Resampling.BICUBIC
    )
    return np.asarray(small)


def luma_psnr(reference: np.ndarray, test: np.ndarray, shave: int = 4) -> float:
    """PSNR of BT.601 luma with a shaved border, as the benchmark measures."""
    weights = np.array([65.481, 128.553, 24.966]) / 255.0
    a = (reference.astype(np.float64) @ weights)[shave:-shave, shave:-shave]
    b = (test.astype(np.float64) @ weights)[shave:-shave, shave:-shave]
    return 10.0 * math.log10(255.0**2 / float(np.mean((a - b) ** 2)))


# -- the processor suite -----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_smoke_shapes(any_upscaler, natural, scale):
    (out,) = any_upscaler([natural], scale=scale)
    assert out.shape == (96 * scale, 128 * scale, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous


def test_versions(upscaler, lanczos):
    assert upscaler.config.method == "learned"  # the default
    assert upscaler.version == "upscale-learned-1"
    assert lanczos.version == "upscale-lanczos-1"


def test_empty_batch(any_upscaler):
    assert any_upscaler([], scale=2) == []


@pytest.mark.parametrize("scale", [1, 3, 8, 2.0, True, "2", None])
def test_bad_scale(any_upscaler, natural, scale):
    with pytest.raises(ValueError, match="scale must be the integer 2 or 4"):
        any_upscaler([natural], scale=scale)


def test_numpy_integer_scale(upscaler, natural):
    assert upscaler([natural], scale=np.int64(2))[0].shape == (192, 256, 3)


def test_bad_input(any_upscaler, natural):
    with pytest.raises(TypeError, match=r"images\[1\]"):
        any_upscaler([natural, "pixels"], scale=2)
    with pytest.raises(ValueError, match="uint8"):
        any_upscaler([natural.astype(np.uint16)], scale=2)
    with pytest.raises(ValueError, match=r"got \(96, 128\).*\(H, W, 3\)|\(H, W, 3\).*\(96, 128\)"):
        any_upscaler([natural[:, :, 0]], scale=2)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"method": "bicubic"}, "method must be"),
        ({"method": "torchscript"}, "needs model"),
        ({"method": "lanczos", "model": Path("x.pt")}, "takes no model"),
        ({"model": "weights/"}, "pathlib.Path"),
        ({"device": "abacus"}, "device"),
        ({"tile": 4}, "tile must be an integer >= 8"),
        ({"tile": 64.0}, "tile must be"),
        ({"overlap": -1}, "overlap must be"),
        ({"tile_batch": 0}, "tile_batch must be"),
        ({"autocast": "fp8"}, "autocast must be"),
    ],
)
def test_bad_config(kwargs, words):
    with pytest.raises(ValueError, match=f"UpscaleConfig: .*{words}|{words}"):
        UpscaleConfig(**kwargs)


def test_missing_weights_folder(tmp_path):
    with pytest.raises(ValueError, match=r"upscale_x2\.pt not found"):
        Upscaler(UpscaleConfig(model=tmp_path))


def test_batch_of_one_equals_batch_of_many(any_upscaler, natural, smooth):
    images = [natural, smooth[:64, :96], natural[:10, :7]]  # three different sizes
    together = any_upscaler(images, scale=2)
    alone = [any_upscaler([image], scale=2)[0] for image in images]
    assert [a.shape for a in together] == [(192, 256, 3), (128, 192, 3), (20, 14, 3)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))


@pytest.mark.parametrize("view", ["flipped", "transposed"])
def test_non_contiguous_input(any_upscaler, natural, view):
    image = natural[:, ::-1] if view == "flipped" else natural.transpose(1, 0, 2)
    (strided,) = any_upscaler([image], scale=4)
    (contiguous,) = any_upscaler([np.ascontiguousarray(image)], scale=4)
    assert np.array_equal(strided, contiguous)


def test_deterministic(any_upscaler, natural):
    assert np.array_equal(
        any_upscaler([natural], scale=4)[0], any_upscaler([natural], scale=4)[0]
    )


@pytest.mark.parametrize("scale", [2, 4])
def test_flat_colour_stays_flat(any_upscaler, scale):
    for image in (np.full((1, 1, 3), 77, np.uint8), np.full((9, 13, 3), (200, 30, 90), np.uint8)):
        (out,) = any_upscaler([image], scale=scale)
        assert out.shape == (image.shape[0] * scale, image.shape[1] * scale, 3)
        assert np.array_equal(out, np.broadcast_to(image[:1, :1], out.shape))


def test_input_is_not_modified(any_upscaler, natural):
    image = natural.copy()
    any_upscaler([image], scale=2)
    assert np.array_equal(image, natural)


@pytest.mark.parametrize("scale", [2, 4])
def test_cpu_result_equals_reference(upscaler, natural, scale):
    """The learned method is the packaged network run untiled, through the tensor boundary."""
    net = load_learned_weights(scale)
    with torch.inference_mode():
        (reference,) = from_tensor(net(to_tensor([natural])))
    (out,) = upscaler([natural], scale=scale)
    assert psnr(reference, out) > 50.0
    assert np.abs(reference.astype(int) - out.astype(int)).max() <= 1


def test_lanczos_equals_opencv(lanczos, natural):
    (out,) = lanczos([natural], scale=2)
    assert np.array_equal(out, cv2.resize(natural, (256, 192), interpolation=cv2.INTER_LANCZOS4))


def test_untrained_network_is_bicubic(natural):
    net = UpscaleNet(2).eval()
    with torch.no_grad():
        net.tail.weight.zero_()
        x = to_tensor([natural])
        expected = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        assert torch.equal(net(x), expected)
    assert net.radius == 7
    assert sum(p.numel() for p in net.parameters()) < 100_000


@pytest.mark.parametrize("scale", [2, 4])
def test_weights_are_small(scale):
    from importlib import resources  # noqa: PLC0415

    blob = resources.files("processors.weights").joinpath(f"upscale_x{scale}.pt").read_bytes()
    assert len(blob) < 1_000_000


# -- quality (by metrics) ----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_downscaled_output_matches_input(upscaler, natural, scale):
    (out,) = upscaler([natural], scale=scale)
    (metrics,) = measure_upscales([natural], [out])
    assert metrics.scale == scale
    assert metrics.consistency_psnr > 30.0
    assert metrics.consistency_ssim > 0.95


@pytest.mark.parametrize(("scale", "margin"), [(2, 0.5), (4, 0.3)])
def test_learned_beats_lanczos_on_a_photo(upscaler, lanczos, photo, scale, margin):
    """A benchmark photo the network never saw (astronaut: helmet, face, flag), degraded as
    the benchmark does; the targets are the benchmark's (here about +1.7 / +1.4 dB)."""
    hr = np.ascontiguousarray(photo("astronaut")[0:192, 128:384])
    lr = bicubic_down(hr, scale)
    (ours,) = upscaler([lr], scale=scale)
    (base,) = lanczos([lr], scale=scale)
    assert luma_psnr(hr, ours) > luma_psnr(hr, base) + margin
    assert ssim(hr, ours) > ssim(hr, base)


def test_lanczos_beats_nearest_neighbour(lanczos, astronaut):
    hr = astronaut[100:356, 100:356]
    lr = cv2.resize(hr, (128, 128), interpolation=cv2.INTER_CUBIC)
    (out,) = lanczos([lr], scale=2)
    nearest = cv2.resize(lr, (256, 256), interpolation=cv2.INTER_NEAREST)
    assert psnr(hr, out) > psnr(hr, nearest) + 1.0


# -- tiling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_equals_untiled(photo, scale):
    """Small tiles (many seams, uneven last tiles) against one tile covering the image."""
    hr = np.ascontiguousarray(photo("coffee")[:200, :260])
    lr = bicubic_down(hr, scale)
    (untiled,) = Upscaler(UpscaleConfig(tile=512))([lr], scale=scale)
    tiled_upscaler = Upscaler(UpscaleConfig(tile=16, overlap=8, tile_batch=3))
    (tiled,) = tiled_upscaler([lr], scale=scale)
    assert psnr(untiled, tiled) > 50.0
    assert abs(psnr(hr, tiled) - psnr(hr, untiled)) <= 0.5


def test_tiles_without_context_would_show_seams(photo):
    """The overlap matters: without it, tile borders differ from the untiled result."""
    lr = bicubic_down(np.ascontiguousarray(photo("coffee")[:128, :128]), 2)
    (untiled,) = Upscaler(UpscaleConfig(tile=512))([lr], scale=2)
    (bare,) = Upscaler(UpscaleConfig(tile=16, overlap=0))([lr], scale=2)
    (covered,) = Upscaler(UpscaleConfig(tile=16, overlap=8))([lr], scale=2)
    assert not np.array_equal(untiled, bare)
    assert psnr(untiled, covered) > psnr(untiled, bare)


# -- TorchScript user models -------------------------------------------------------------------

# torch 2.10+ deprecates torch.jit.script/save (the processor silences its own torch.jit.load).
scripting = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")


class _Nearest(torch.nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=float(self.scale), mode="nearest")


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """Factory: a TorchScript module saved to a file; returns its path."""
    folder = tmp_path_factory.mktemp("scripted")

    def make(module: torch.nn.Module, name: str) -> Path:
        path = folder / f"{name}.pt"
        torch.jit.save(torch.jit.script(module), str(path))
        return path

    return make


@scripting
@pytest.mark.parametrize(("native", "scale"), [(2, 2), (4, 4), (4, 2), (2, 4)])
def test_torchscript_nearest(scripted, natural, native, scale):
    path = scripted(_Nearest(native), f"nearest{native}")
    upscaler = Upscaler(UpscaleConfig(method="torchscript", model=path, tile=32, overlap=4))
    assert upscaler.version.startswith(f"upscale-torchscript-x{native}-")
    (out,) = upscaler([natural], scale=scale)
    expected = natural.repeat(scale, axis=0).repeat(scale, axis=1)
    assert np.array_equal(out, expected)


@scripting
def test_torchscript_wrong_scale(scripted):
    path = scripted(_Identity(), "identity")
    with pytest.raises(ValueError, match=r"returned \(1, 3, 16, 24\).*x2 model"):
        Upscaler(UpscaleConfig(method="torchscript", model=path))


@scripting
def test_torchscript_not_a_module(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript module"):
        Upscaler(UpscaleConfig(method="torchscript", model=path))
    with pytest.raises(ValueError, match="not found"):
        Upscaler(UpscaleConfig(method="torchscript", model=tmp_path / "absent.pt"))


# -- CUDA --------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("autocast", ["fp16", "bf16"])
def test_cuda_autocast_matches_cpu(upscaler, natural, autocast):
    cuda = Upscaler(UpscaleConfig(device="cuda", autocast=autocast, tile=48))
    for scale in (2, 4):
        (on_gpu,) = cuda([natural], scale=scale)
        (on_cpu,) = upscaler([natural], scale=scale)
        assert psnr(on_cpu, on_gpu) > 40.0


def test_cuda_unavailable_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        Upscaler(UpscaleConfig(device="cuda"))


# -- plan_scale --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "target", "expected"),
    [
        (100, 200, 201, 2),
        (100, 200, 400, 2),  # x2 reaches it exactly
        (200, 100, 401, 4),  # portrait: the long side is the height
        (100, 200, 800, 4),
        (100, 200, 5000, 4),  # neither reaches it: the largest factor
    ],
)
def test_plan_scale(height, width, target, expected):
    assert plan_scale(height, width, target) == expected


@pytest.mark.parametrize(
    ("height", "width", "target", "words"),
    [
        (100, 200, 200, "not larger"),
        (100, 200, 150, "not larger"),
        (0, 200, 400, "height"),
        (100, -1, 400, "width"),
        (100, 200, 400.0, "target_long_side"),
        (True, 200, 400, "height"),
    ],
)
def test_plan_scale_rejects(height, width, target, words):
    with pytest.raises(ValueError, match=words):
        plan_scale(height, width, target)


# -- resize_long_side --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("long_side", "expected"),
    [(256, (192, 256, 3)), (64, (48, 64, 3)), (128, (96, 128, 3)), (5, (4, 5, 3))],
)
def test_resize_long_side_landscape(natural, long_side, expected):
    out = resize_long_side(natural, long_side)
    assert out.shape == expected
    assert out.dtype == np.uint8


def test_resize_long_side_portrait_and_thin(natural):
    assert resize_long_side(natural.transpose(1, 0, 2), 512).shape == (512, 384, 3)
    assert resize_long_side(natural[:1], 10).shape == (1, 10, 3)  # short side stays >= 1
    assert resize_long_side(natural[:1, :50], 5).shape == (1, 5, 3)


def test_resize_long_side_same_size_is_a_copy(natural):
    out = resize_long_side(natural, 128)
    assert np.array_equal(out, natural)
    assert not np.shares_memory(out, natural)


def test_resize_long_side_quality(natural):
    # Down with area averaging, then back up with Lanczos: close to the original.
    round_trip = resize_long_side(resize_long_side(natural, 64), 128)
    assert psnr(natural, round_trip) > 25.0


@pytest.mark.parametrize("long_side", [0, -5, 64.0, None])
def test_resize_long_side_rejects(natural, long_side):
    with pytest.raises(ValueError, match="long_side"):
        resize_long_side(natural, long_side)

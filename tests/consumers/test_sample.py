"""Tests for the messy vendor upload generator (consumers/dev/sample.py)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import orjson
import pytest
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from consumers.dev.sample import (
    EXPECTED_REASON,
    KINDS,
    TEXT_KINDS,
    SampleItem,
    adobe_rgb_icc,
    generate_sample,
)
from schemas.reasons import ReasonCode


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One batch covering every kind once (generated once per module: it takes ~1 s)."""
    root = tmp_path_factory.mktemp("sample")
    generate_sample(root, len(KINDS), seed=0)
    return root


@pytest.fixture(scope="module")
def items(sample_root: Path) -> dict[str, SampleItem]:
    lines = (sample_root / "manifest.jsonl").read_bytes().splitlines()
    loaded = [SampleItem(**orjson.loads(line)) for line in lines]
    return {item.kind: item for item in loaded}


def upload(root: Path, item: SampleItem) -> Path:
    return root / "upload" / item.file


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_batch_of_len_kinds_covers_every_kind_in_order(sample_root: Path) -> None:
    lines = (sample_root / "manifest.jsonl").read_bytes().splitlines()
    manifest = [SampleItem(**orjson.loads(line)) for line in lines]
    assert [item.kind for item in manifest] == list(KINDS)
    assert len(set(KINDS)) == len(KINDS)
    assert len({item.file for item in manifest}) == len(manifest)
    for item in manifest:
        path = upload(sample_root, item)
        assert path.is_file()
        vendor, sku, _name = item.file.split("/")
        assert (vendor, sku) == (item.vendor_id, item.sku)


def test_manifest_is_what_generate_sample_returns_and_reports(tmp_path: Path) -> None:
    seen: list[SampleItem] = []
    returned = generate_sample(tmp_path, 3, seed=5, on_item=seen.append)
    assert seen == returned
    assert [item.kind for item in returned] == list(KINDS[:3])
    lines = (tmp_path / "manifest.jsonl").read_bytes().splitlines()
    assert [SampleItem(**orjson.loads(line)) for line in lines] == returned


def test_same_seed_is_byte_identical_and_counts_wrap_around(
    sample_root: Path, tmp_path: Path
) -> None:
    # One more item than the fixture: every file the fixture wrote must come out byte-identical
    # (items do not depend on the count), and the extra item wraps around to the first kind.
    again = tmp_path / "again"
    returned = generate_sample(again, len(KINDS) + 1, seed=0)
    assert returned[-1].kind == KINDS[0]
    first, second = tree(sample_root), tree(again)
    manifest_first, manifest_second = first.pop("manifest.jsonl"), second.pop("manifest.jsonl")
    assert set(second) - set(first) == {f"upload/{returned[-1].file}"}
    assert [name for name in first if first[name] != second[name]] == []
    assert manifest_second.splitlines()[: len(KINDS)] == manifest_first.splitlines()

    other = tmp_path / "other"
    (other_clean,) = generate_sample(other, 1, seed=1)
    assert other_clean.kind == returned[0].kind
    assert upload(other, other_clean).read_bytes() != upload(again, returned[0]).read_bytes()


def test_zero_count_writes_an_empty_manifest(tmp_path: Path) -> None:
    assert generate_sample(tmp_path, 0) == []
    assert (tmp_path / "manifest.jsonl").read_bytes() == b""


@pytest.mark.parametrize(("count", "seed"), [(-1, 0), (1, -3)])
def test_bad_arguments_say_what_to_pass(tmp_path: Path, count: int, seed: int) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        generate_sample(tmp_path, count, seed=seed)


def test_expected_status_and_reason(items: dict[str, SampleItem]) -> None:
    for kind, item in items.items():
        if kind in EXPECTED_REASON:
            assert item.expected_status == "rejected"
            assert item.expected_reason == EXPECTED_REASON[kind].value
            assert ReasonCode(item.expected_reason) is EXPECTED_REASON[kind]
        else:
            assert item.expected_status == "ok"
            assert item.expected_reason is None
    assert items["huge_bomb"].expected_reason == "DECOMPRESSION_BOMB"
    assert items["wrong_extension"].expected_status == "ok"
    assert items["large"].expected_status == "ok"


def test_truth_masks_are_binary_and_non_empty_exactly_for_text_kinds(
    sample_root: Path, items: dict[str, SampleItem]
) -> None:
    for kind, item in items.items():
        if kind not in TEXT_KINDS:
            assert item.truth_mask is None
            continue
        assert item.truth_mask is not None
        with Image.open(sample_root / item.truth_mask) as mask_img:
            mask = np.asarray(mask_img)
            assert mask_img.mode == "L"
        with Image.open(upload(sample_root, item)) as photo:
            assert mask.shape == (photo.height, photo.width)
        assert set(np.unique(mask).tolist()) == {0, 255}
        coverage = float((mask == 255).mean())
        assert 0.001 < coverage < 0.3, (kind, coverage)
    truth_files = sorted((sample_root / "truth").rglob("*.png"))
    assert len(truth_files) == len(TEXT_KINDS)


def test_text_was_burned_in_where_the_mask_says(
    sample_root: Path, items: dict[str, SampleItem]
) -> None:
    # The promo label is an opaque box: inside the mask the pixels are the label's colours.
    item = items["promo"]
    assert item.truth_mask is not None
    with Image.open(sample_root / item.truth_mask) as mask_img:
        mask = np.asarray(mask_img) == 255
    with Image.open(upload(sample_root, item)) as photo:
        rgb = np.asarray(photo.convert("RGB")).astype(int)
    red_or_yellow = rgb[..., 0] > 150
    assert red_or_yellow[mask].mean() > 0.5


def test_huge_bomb_is_small_on_disk_but_declares_a_huge_image(
    sample_root: Path, items: dict[str, SampleItem], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = upload(sample_root, items["huge_bomb"])
    assert path.stat().st_size < 2_000_000
    with pytest.raises(Image.DecompressionBombError):  # what a default Pillow does with it
        Image.open(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(path) as img:  # header only: nothing is decoded
        width, height = img.size
        assert img.format == "PNG"
    assert width * height > 40_000_000


def test_broken_files_are_what_they_claim(sample_root: Path, items: dict[str, SampleItem]) -> None:
    truncated = upload(sample_root, items["truncated"])
    with Image.open(truncated) as img, pytest.raises(OSError, match="truncated"):
        img.load()
    assert upload(sample_root, items["empty"]).stat().st_size == 0
    not_image = upload(sample_root, items["not_image"])
    assert not_image.suffix == ".jpg"
    assert not_image.read_bytes().startswith(b"sku,title,price")
    random_bytes = upload(sample_root, items["random_bytes"])
    assert random_bytes.suffix == ".png"
    for path in (not_image, random_bytes, upload(sample_root, items["empty"])):
        with pytest.raises(UnidentifiedImageError):
            Image.open(path)


def test_wrong_extension_is_a_valid_png_named_jpg(
    sample_root: Path, items: dict[str, SampleItem]
) -> None:
    path = upload(sample_root, items["wrong_extension"])
    assert path.suffix == ".jpg"
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.load()


def test_adobe_rgb_icc_profile_loads_and_converts() -> None:
    icc = adobe_rgb_icc()
    profile = ImageCms.ImageCmsProfile(BytesIO(icc))
    assert "Adobe RGB" in ImageCms.getProfileDescription(profile)
    assert profile.profile.xcolor_space == "RGB "
    colorant = profile.profile.red_colorant
    assert colorant is not None
    red = colorant[0]
    assert red == pytest.approx((0.6097, 0.3111, 0.0195), abs=2e-3)  # Adobe's own profile
    img = Image.new("RGB", (3, 1))
    img.putpixel((0, 0), (128, 128, 128))
    img.putpixel((1, 0), (0, 255, 0))
    img.putpixel((2, 0), (255, 255, 255))
    converted = ImageCms.profileToProfile(
        img, profile, ImageCms.createProfile("sRGB"), outputMode="RGB"
    )
    assert converted is not None
    grey = converted.getpixel((0, 0))
    assert isinstance(grey, tuple)
    assert max(grey) - min(grey) <= 2  # neutral stays neutral
    assert abs(grey[0] - 128) <= 4  # gamma 2.2 vs sRGB: mid grey barely moves
    assert converted.getpixel((2, 0)) == (255, 255, 255)


def test_colour_and_depth_kinds(sample_root: Path, items: dict[str, SampleItem]) -> None:
    with Image.open(upload(sample_root, items["adobe_rgb"])) as img:
        assert img.format == "JPEG"
        assert img.info["icc_profile"] == adobe_rgb_icc()
    with Image.open(upload(sample_root, items["cmyk"])) as img:
        assert (img.format, img.mode) == ("JPEG", "CMYK")
    with Image.open(upload(sample_root, items["alpha"])) as img:
        assert img.mode == "RGBA"
        alpha = np.asarray(img)[..., 3]
        assert alpha.min() == 0
        assert alpha.max() == 255
    with Image.open(upload(sample_root, items["palette_alpha"])) as img:
        assert img.mode == "P"
        assert "transparency" in img.info
        assert np.asarray(img.convert("RGBA"))[..., 3].min() == 0

    rgb16 = np.asarray(cv2.imread(str(upload(sample_root, items["rgb16"])), cv2.IMREAD_UNCHANGED))
    assert rgb16.dtype == np.uint16
    assert rgb16.ndim == 3
    assert rgb16.shape[2] == 3
    assert np.any((rgb16 & 0xFF) != (rgb16 >> 8))  # the low byte carries real gradations
    gray16 = np.asarray(cv2.imread(str(upload(sample_root, items["gray16"])), cv2.IMREAD_UNCHANGED))
    assert gray16.dtype == np.uint16
    assert gray16.ndim == 2


def test_exif_rotated_and_gps(sample_root: Path, items: dict[str, SampleItem]) -> None:
    with Image.open(upload(sample_root, items["exif_rotated"])) as img:
        assert img.getexif()[ExifTags.Base.Orientation] in {6, 8}
        assert img.height > img.width  # stored on its side...
        upright = ImageOps.exif_transpose(img)
        assert upright.width > upright.height  # ...and landscape once the tag is applied
    with Image.open(upload(sample_root, items["gps"])) as img:
        exif = img.getexif()
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        assert {ExifTags.GPS.GPSLatitude, ExifTags.GPS.GPSLongitude} <= gps.keys()
        assert gps[ExifTags.GPS.GPSLatitudeRef] in {"N", "S"}
        assert exif[ExifTags.Base.Make]
        assert exif[ExifTags.Base.Model]


def test_geometry_and_content_kinds(sample_root: Path, items: dict[str, SampleItem]) -> None:
    def size(kind: str) -> tuple[int, int]:
        with Image.open(upload(sample_root, items[kind])) as img:
            return img.size

    def sharpness(kind: str) -> float:
        with Image.open(upload(sample_root, items[kind])) as img:
            gray = np.asarray(img.convert("L"))
        return float(cv2.Laplacian(gray, cv2.CV_64F).var())

    assert size("tiny") == (200, 150)
    width, height = size("extreme_aspect")
    assert width / height >= 5.5
    assert height >= 400
    assert max(size("large")) >= 2800
    for kind in ("clean", "caption", "cmyk", "gps", "wrong_extension"):
        assert min(size(kind)) >= 500, kind
    with Image.open(upload(sample_root, items["blank"])) as img:
        assert np.ptp(np.asarray(img.convert("L"))) <= 2
    assert sharpness("blurry") * 10 < min(sharpness("clean"), sharpness("large"))


def test_dpi_is_stored_in_the_files(sample_root: Path, items: dict[str, SampleItem]) -> None:
    for kind in ("clean", "caption", "cmyk", "adobe_rgb", "rgb16", "gray16", "tiny", "large"):
        item = items[kind]
        assert 72 <= item.dpi <= 300
        with Image.open(upload(sample_root, item)) as img:
            assert img.info["dpi"][0] == pytest.approx(item.dpi, abs=0.5), kind
    assert items["empty"].dpi == 0

"""End to end, embedded: a generated messy upload through every stage, via the CLI too."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from skimage.data import astronaut

from consumers.cli import build_parser, main
from consumers.dev.sample import KINDS, generate_sample
from consumers.embedded import _row, run_embedded
from consumers.keys import ObjectKeys
from consumers.runner import TopicNames
from consumers.settings import Settings
from consumers.store import FilesystemStore
from consumers.transport import Record
from consumers.uploads import InputFile, collect_inputs
from schemas.events import Operations, Topic

CONTRACT_KEYS = ["input", "status", "reasons", "route", "output", "metrics", "timings_ms"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    generate_sample(root, len(KINDS), seed=3)  # one file of every kind
    return root


@pytest.fixture(scope="module")
def manifest(sample: Path) -> dict[str, dict]:
    lines = (sample / "manifest.jsonl").read_text().splitlines()
    return {item["file"]: item for item in map(json.loads, lines)}


def _run(sample: Path, out: Path):
    files = collect_inputs(sample / "upload")
    return asyncio.run(
        run_embedded(files, out, Settings(), operations=Operations(upscale_to=1200))
    )


@pytest.fixture(scope="module")
def first_run(sample: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("out1")
    return out, _run(sample, out)


@pytest.mark.slow
def test_exactly_one_record_per_input(first_run, manifest):
    _, run = first_run
    names = [row.record["input"] for row in run.rows]
    assert sorted(names) == sorted(manifest)
    assert all(list(row.record) == CONTRACT_KEYS for row in run.rows)


@pytest.mark.slow
def test_rejected_files_carry_the_expected_reason(first_run, manifest):
    _, run = first_run
    for row in run.rows:
        expected = manifest[row.record["input"]]
        codes = [r["code"] for r in row.record["reasons"]]
        if expected["expected_status"] == "rejected":
            assert row.record["status"] == "rejected", (row.record["input"], row.record)
            assert expected["expected_reason"] in codes
            assert all(r["text"] for r in row.record["reasons"])
        else:
            assert row.record["status"] in {"done", "review"}, (row.record["input"], row.record)


@pytest.mark.slow
def test_every_image_reaches_exactly_one_terminal_topic(first_run, manifest):
    _, run = first_run
    keys = []
    for topic in (Topic.RESULTS, Topic.REJECTED, Topic.REVIEW, Topic.DLQ):
        keys += [r.key for r in run.transport.records(f"pixelgate.{topic.value}")]
    assert len(keys) == len(set(keys)) == len(manifest)


@pytest.mark.slow
def test_outputs_decode_as_srgb_rgb8_without_metadata(first_run):
    out, run = first_run
    outputs = [row.record["output"] for row in run.rows if row.record["output"]]
    assert len(outputs) >= 10
    for rel in outputs:
        with Image.open(out / rel) as image:
            assert image.format == "PNG"
            assert image.mode in {"RGB", "RGBA"}  # RGBA only where the alpha policy keeps it
            assert "icc_profile" not in image.info
            assert "exif" not in image.info
            assert not image.getexif()


@pytest.mark.slow
def test_text_is_routed_to_inpaint_and_upscale_requests_are_met(first_run, manifest):
    out, run = first_run
    by_kind = {manifest[r.record["input"]]["kind"]: r.record for r in run.rows}
    caption = by_kind["caption"]
    assert "inpaint" in caption["route"]["stages"]
    assert "inpaint" in caption["metrics"]
    done = [r.record for r in run.rows if r.record["status"] == "done"]
    for record in done:
        with Image.open(out / record["output"]) as image:
            assert max(image.size) >= 1200 or "upscale" not in record["route"]["stages"]


@pytest.mark.slow
def test_rerun_gives_byte_identical_outputs(first_run, sample, tmp_path):
    out1, run1 = first_run
    run2 = _run(sample, tmp_path)
    records1 = {r.record["input"]: r.record for r in run1.rows}
    records2 = {r.record["input"]: r.record for r in run2.rows}
    assert {k: v["status"] for k, v in records1.items()} == {
        k: v["status"] for k, v in records2.items()
    }
    for name, record in records1.items():
        if record["output"]:
            assert (out1 / record["output"]).read_bytes() == (
                tmp_path / records2[name]["output"]
            ).read_bytes(), name


@pytest.mark.slow
def test_cli_run_writes_both_reports(sample, manifest, tmp_path, capsys):
    subset = tmp_path / "in"
    for name, item in manifest.items():
        if item["kind"] in {"caption", "truncated", "clean", "alpha"}:
            (subset / name).parent.mkdir(parents=True, exist_ok=True)
            (subset / name).write_bytes((sample / "upload" / name).read_bytes())
    out = tmp_path / "out"
    code = main(["run", str(subset), "--out", str(out), "--remove-text", "off"])
    assert code == 0
    lines = (out / "report.jsonl").read_text().splitlines()
    assert len(lines) == 4
    assert all(json.loads(line)["route"] == {} or "text removal off by request"
               in json.loads(line)["route"]["why"] for line in lines)
    html = (out / "report.html").read_text()
    assert "data:image/jpeg;base64," in html
    assert "pixelgate run" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "/no/such/dir", "--out", "x"], "input not found"),
        (["upscale", "/no/such.png", "--scale", "2", "--out", "x"], "input not found"),
    ],
)
def test_cli_bad_path_is_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pixelgate: error:")
    assert message in err
    assert "\n" not in err


@pytest.mark.parametrize(
    "argv",
    [["upscale", "x.png", "--scale", "3", "--out", "o"], ["run"], ["frobnicate"],
     ["inpaint", "x.png", "--out", "o"]],
)
def test_cli_bad_argument_is_one_line_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pixelgate: error:")
    assert "\n" not in err


def test_cli_out_must_be_a_folder(sample, tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["detect-text", str(sample / "upload"), "--out", str(target)]) == 2
    assert "must be a folder" in capsys.readouterr().err


def test_cli_surface_matches_the_contract():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= {"run", "preflight", "detect-text", "remove-text", "inpaint",
                                "upscale", "sample"}
    options = {a.dest for a in sub.choices["run"]._actions}
    assert {"input", "out", "config"} <= options
    assert {"input", "out", "scale"} <= {a.dest for a in sub.choices["upscale"]._actions}
    assert {"input", "out", "mask"} <= {a.dest for a in sub.choices["inpaint"]._actions}


@pytest.mark.slow
def test_single_stage_tools_write_pngs_named_by_stem(sample, tmp_path, manifest):
    upload = sample / "upload"
    caption = next(f for f, m in manifest.items() if m["kind"] == "caption")
    src = upload / caption
    assert main(["detect-text", str(src), "--out", str(tmp_path / "masks")]) == 0
    mask_path = tmp_path / "masks" / Path(Path(caption).name).with_suffix(".png")
    with Image.open(mask_path) as mask:
        assert mask.mode == "L"
        assert mask.getextrema()[1] == 255
    assert main(["inpaint", str(src), "--mask", str(mask_path), "--out", str(tmp_path / "f")]) == 0
    assert main(["upscale", str(src), "--scale", "2", "--out", str(tmp_path / "u")]) == 0
    with Image.open(src) as original, Image.open(
        tmp_path / "u" / mask_path.name
    ) as up:
        assert up.size == (original.size[0] * 2, original.size[1] * 2) or up.size == (
            original.size[1] * 2, original.size[0] * 2)


def test_preflight_command_strips_gps_exif(tmp_path):
    image = Image.fromarray(astronaut())
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 22.0, 1.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    src = tmp_path / "gps.jpg"
    src.write_bytes(buffer.getvalue())
    with Image.open(src) as check:
        assert check.getexif().get_ifd(0x8825)
    assert main(["preflight", str(src), "--out", str(tmp_path / "o")]) == 0
    out = tmp_path / "o" / "gps.png"
    data = out.read_bytes()
    assert b"Exif" not in data
    assert b"Camera Maker" not in data
    with Image.open(out) as cleaned:
        assert not cleaned.getexif()
        assert "exif" not in cleaned.info


@pytest.mark.slow
def test_alpha_keep_policy_reattaches_alpha_in_the_final_image(sample, manifest, tmp_path):
    alpha_file = next(f for f, m in manifest.items() if m["kind"] == "alpha")
    src = tmp_path / "in" / "cutout.png"
    src.parent.mkdir()
    src.write_bytes((sample / "upload" / alpha_file).read_bytes())
    settings = Settings(preflight={"alpha": "keep"})
    run = asyncio.run(run_embedded(collect_inputs(src.parent), tmp_path / "out", settings))
    (row,) = run.rows
    assert row.record["status"] == "done", row.record
    with Image.open(tmp_path / "out" / row.record["output"]) as image:
        assert image.mode == "RGBA"
        low, high = image.getchannel("A").getextrema()
        assert low < 128 < high  # transparent background, opaque product


@pytest.mark.slow
def test_output_folder_inside_input_is_not_ingested(sample, manifest, tmp_path):
    src = tmp_path / "in"
    clean = next(f for f, m in manifest.items() if m["kind"] == "clean")
    (src / "a").mkdir(parents=True)
    (src / "a" / "one.jpg").write_bytes((sample / "upload" / clean).read_bytes())
    for _ in range(2):  # the second run must not pick up the first run's outputs
        assert main(["run", str(src), "--out", str(src / "out"), "--remove-text", "off"]) == 0
    lines = (src / "out" / "report.jsonl").read_text().splitlines()
    assert [json.loads(line)["input"] for line in lines] == ["a/one.jpg"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("PoisonRecordError", "INVALID_EVENT"),
        ("SourceMissingError", "SOURCE_MISSING"),
        ("StoreUnavailableError", "PROCESSING_FAILED"),
        ("ValueError", "PROCESSING_FAILED"),
        ("", "PROCESSING_FAILED"),
    ],
)
def test_a_dead_letter_is_reported_with_its_error_types_reason(tmp_path, error, code):
    record = Record(
        topic="pixelgate.dlq", partition=0, offset=0, key="img", value=b"{",
        headers=(("error-class", error.encode()), ("error-message", b"what went wrong")),
    )
    row = _row(InputFile("a.png", tmp_path / "a.png"), record, TopicNames("pixelgate."),
               FilesystemStore(tmp_path / "store"), tmp_path, set(), ObjectKeys("b", "p"))
    assert row.record["status"] == "failed"
    (reason,) = row.record["reasons"]
    assert reason["code"] == code
    assert reason["detail"] == f"{error}: what went wrong"
    assert row.before is None

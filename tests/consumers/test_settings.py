"""Settings from env + YAML; secrets never rendered; structured logs carry context."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import structlog

from consumers.errors import ConfigError, PoisonRecordError, SourceMissingError
from consumers.logging import configure_logging, get_logger
from consumers.settings import load_settings
from consumers.store import FilesystemStore
from schemas.events import ImageRef


def test_env_names_from_the_deployment_contract(monkeypatch):
    monkeypatch.setenv("PIXELGATE_KAFKA_BOOTSTRAP_SERVERS", "broker:9093")
    monkeypatch.setenv("PIXELGATE_TOPIC_PREFIX", "acme.")
    monkeypatch.setenv("PIXELGATE_S3_ENDPOINT", "http://minio:9000")
    monkeypatch.setenv("PIXELGATE_S3_ACCESS_KEY", "AKIAEXAMPLE")
    monkeypatch.setenv("PIXELGATE_S3_SECRET_KEY", "hunter2-very-secret")
    monkeypatch.setenv("PIXELGATE_S3_REGION", "eu-west-1")
    monkeypatch.setenv("PIXELGATE_OUTPUT_BUCKET", "clean")
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "broker:9093"
    assert settings.topic_prefix == "acme."
    assert settings.s3_region == "eu-west-1"
    assert settings.output_bucket == "clean"
    assert settings.s3_secret_key is not None
    assert settings.s3_secret_key.get_secret_value() == "hunter2-very-secret"
    dumped = json.dumps(settings.as_dict())
    assert "hunter2" not in dumped
    assert "AKIAEXAMPLE" not in dumped
    assert "hunter2" not in repr(settings)


def test_yaml_overlays_env(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PIXELGATE_OUTPUT_BUCKET", "from-env")
    config = tmp_path / "c.yaml"
    config.write_text("output_bucket: from-file\nbatch:\n  max_batch: 3\n")
    settings = load_settings(config)
    assert settings.output_bucket == "from-file"
    assert settings.knobs("route").max_batch == 3


def test_inpaint_thin_reaches_the_inpainter(monkeypatch):
    from consumers.configs import inpaint_config  # noqa: PLC0415

    assert inpaint_config(load_settings()).thin == 6.0
    monkeypatch.setenv("PIXELGATE_INPAINT_THIN", "0")
    config = inpaint_config(load_settings())
    assert config.thin == 0.0
    monkeypatch.setenv("PIXELGATE_INPAINT_THIN", "-1")
    with pytest.raises(ConfigError, match="inpaint_thin"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "match"),
    [("max_batchh: 3\n", "max_batchh"), ("- a\n- b\n", "mapping"), ("a: [\n", "YAML"),
     ("batch: {max_batch: 0}\n", "max_batch")],
)
def test_bad_config_is_a_readable_error(tmp_path: Path, text, match):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(config)


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_logs_are_json_with_bound_context_and_no_secrets():
    stream = io.BytesIO()
    configure_logging("INFO", stream=stream)
    try:
        with structlog.contextvars.bound_contextvars(image_id="img1", stage="route", offset=7):
            get_logger("t").info("hello", s3_secret_key="hunter2")
    finally:
        structlog.reset_defaults()
    line = json.loads(stream.getvalue().splitlines()[0])
    assert line["image_id"] == "img1"
    assert line["stage"] == "route"
    assert line["offset"] == 7
    assert line["event"] == "hello"
    assert "hunter2" not in stream.getvalue().decode()


def test_filesystem_store_round_trip_and_missing(tmp_path: Path):
    store = FilesystemStore(tmp_path)
    ref = ImageRef(bucket="out", key="p/a/b.png")
    assert not store.exists(ref)
    with pytest.raises(SourceMissingError):
        store.get(ref)
    store.put(ref, b"abc", "image/png")
    assert store.get(ref) == b"abc"
    assert store.exists(ref)
    assert not list((tmp_path / "out" / "p" / "a").glob(".tmp-*"))


def test_filesystem_store_refuses_escape_via_symlink(tmp_path: Path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    with pytest.raises(PoisonRecordError):
        FilesystemStore(tmp_path).get(ImageRef(bucket="out", key="link/secret.txt"))


def test_library_logs_are_json_and_repeats_are_throttled():
    stream = io.BytesIO()
    configure_logging("INFO", stream=stream)
    try:
        noisy = logging.getLogger("aiokafka.conn")
        for _ in range(500):
            noisy.error("Unable connect to node with id %s: %s", 111, "refused")
    finally:
        structlog.reset_defaults()
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "_pixelgate", False):
                logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    refused = [line for line in lines if line["logger"] == "aiokafka.conn"]
    assert len(refused) == 1  # 500 repeats inside the window become one line
    assert refused[0]["level"] == "error"
    assert "Unable connect to node with id 111" in refused[0]["event"]


def test_the_join_timeout_outlasts_a_rebalance_unless_set(monkeypatch):
    settings = load_settings()
    # A rebalance may wait for another member's batch (up to max.poll.interval.ms).
    assert settings.join_timeout_s() == pytest.approx(
        (settings.kafka_max_poll_interval_ms + 3 * settings.kafka_session_timeout_ms) / 1000
    )
    monkeypatch.setenv("PIXELGATE_KAFKA_JOIN_TIMEOUT_MS", "45000")
    assert load_settings().join_timeout_s() == 45.0
    monkeypatch.setenv("PIXELGATE_KAFKA_JOIN_TIMEOUT_MS", "10")
    with pytest.raises(ConfigError, match="kafka_join_timeout_ms"):
        load_settings()
    # Shorter than 3 session timeouts: a member joining again could time out on every try.
    monkeypatch.setenv("PIXELGATE_KAFKA_JOIN_TIMEOUT_MS", "25000")
    with pytest.raises(ConfigError, match="at least 3 session timeouts"):
        load_settings()
    monkeypatch.setenv("PIXELGATE_KAFKA_SESSION_TIMEOUT_MS", "6000")
    assert load_settings().join_timeout_s() == 25.0

"""Client configuration built from settings: SASL (PLAIN, SCRAM) and TLS; S3 endpoint parsing."""

from __future__ import annotations

import ssl

import certifi
import pytest

from consumers.errors import ConfigError
from consumers.kafka import kafka_client_config
from consumers.s3 import minio_client
from consumers.settings import Settings


def test_plaintext_by_default():
    config = kafka_client_config(Settings(kafka_bootstrap_servers="b1:9092,b2:9092"))
    assert config == {"bootstrap_servers": "b1:9092,b2:9092", "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl(mechanism):
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="pixelgate",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=certifi.where(),
    )
    config = kafka_client_config(settings)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == mechanism
    assert config["sasl_plain_username"] == "pixelgate"
    assert config["sasl_plain_password"] == "s3cret"
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    assert config["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "s3cret" not in str(settings.as_dict())


def test_sasl_plaintext_has_no_tls_context():
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                        kafka_sasl_username="u", kafka_sasl_password="p")
    config = kafka_client_config(settings)
    assert "ssl_context" not in config
    assert config["sasl_mechanism"] == "PLAIN"


def test_sasl_without_mechanism_is_a_config_error():
    with pytest.raises(ConfigError, match="SASL"):
        kafka_client_config(Settings(kafka_security_protocol="SASL_SSL"))


def test_tls_only():
    config = kafka_client_config(Settings(kafka_security_protocol="SSL"))
    assert isinstance(config["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in config


@pytest.mark.parametrize("endpoint", [None, "minio:9000", "ftp://x:1"])
def test_bad_s3_endpoint_is_a_config_error(endpoint):
    with pytest.raises(ConfigError, match="PIXELGATE_S3_ENDPOINT"):
        minio_client(Settings(s3_endpoint=endpoint))


def test_https_endpoint_is_secure():
    client = minio_client(Settings(s3_endpoint="https://minio.example:9000", s3_access_key="a",
                                   s3_secret_key="b"))
    assert client._base_url.is_https

"""The S3 store (the ``minio`` client): the same ``Store`` protocol as the filesystem store.

Errors are mapped onto the error tree by type: a missing bucket or key is
:class:`SourceMissingError` (permanent: dead-letter), a connection failure, timeout or 5xx answer
is :class:`StoreUnavailableError` (retriable: the runner backs off and tries again, without
limit on tries, so an outage pauses the stage instead of flooding ``dlq``). The HTTP client makes
two quick tries of its own with short timeouts, so an outage is noticed in seconds.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from consumers.errors import ConfigError, SourceMissingError, StoreUnavailableError
from consumers.settings import Settings
from schemas.events import ImageRef

__all__ = ["S3Store", "minio_client"]

_MISSING = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"}


def minio_client(settings: Settings) -> Minio:
    """A minio client for ``settings.s3_endpoint`` (``http://host:port`` or ``https://...``)."""
    if not settings.s3_endpoint:
        raise ConfigError("PIXELGATE_S3_ENDPOINT is not set (e.g. http://127.0.0.1:18333)")
    url = urlparse(settings.s3_endpoint)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ConfigError(
            f"PIXELGATE_S3_ENDPOINT must look like http://host:port, got {settings.s3_endpoint!r}"
        )
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=3.0, read=30.0),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        maxsize=16,
    )
    return Minio(
        url.netloc,
        access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
        secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        region=settings.s3_region,
        secure=url.scheme == "https",
        http_client=http,
    )


class S3Store:
    """Objects in S3-compatible storage (MinIO, SeaweedFS, AWS S3)."""

    def __init__(self, settings: Settings, client: Minio | None = None) -> None:
        self.client = client or minio_client(settings)

    def ensure_buckets(self, names: Sequence[str]) -> None:
        """Create missing buckets (idempotent)."""
        for name in names:
            try:
                if not self.client.bucket_exists(name):
                    self.client.make_bucket(name)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise self._unavailable(exc) from exc
            except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise self._unavailable(exc) from exc

    def get(self, ref: ImageRef) -> bytes:
        """Read the object."""
        try:
            response = self.client.get_object(ref.bucket, ref.key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            if exc.code in _MISSING:
                raise SourceMissingError(f"no object at {ref.bucket}/{ref.key}") from None
            raise self._unavailable(exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def put(self, ref: ImageRef, data: bytes, content_type: str) -> None:
        """Write (or overwrite) the object."""
        try:
            self.client.put_object(
                ref.bucket, ref.key, io.BytesIO(data), len(data), content_type=content_type
            )
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                raise SourceMissingError(f"bucket {ref.bucket} does not exist") from None
            raise self._unavailable(exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def exists(self, ref: ImageRef) -> bool:
        """Whether the object exists."""
        try:
            self.client.stat_object(ref.bucket, ref.key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise self._unavailable(exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return True

    @staticmethod
    def _unavailable(exc: BaseException) -> StoreUnavailableError:
        # The message names the error type and code only: never the request URL's signature.
        code = getattr(exc, "code", None)
        return StoreUnavailableError(f"object store unavailable: {type(exc).__name__} {code or ''}")

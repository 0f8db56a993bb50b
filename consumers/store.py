"""Object stores: the ``Store`` protocol and the filesystem implementation.

Methods are synchronous on purpose: the S3 client is synchronous too, and the runner calls every
store method in an executor so the event loop stays free.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from consumers.errors import PoisonRecordError, SourceMissingError
from schemas.events import ImageRef

__all__ = ["FilesystemStore", "Store"]


class Store(Protocol):
    """Byte objects addressed by :class:`ImageRef` (bucket + key)."""

    def get(self, ref: ImageRef) -> bytes:
        """The object's bytes; :class:`SourceMissingError` if it does not exist."""
        ...

    def put(self, ref: ImageRef, data: bytes, content_type: str) -> None:
        """Write (or overwrite) the object."""
        ...

    def exists(self, ref: ImageRef) -> bool:
        """Whether the object exists."""
        ...


class FilesystemStore:
    """Objects as files under ``root/<bucket>/<key>``; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, ref: ImageRef) -> Path:
        """The file that holds ``ref``; refuses anything that would escape the root."""
        path = (self.root / ref.bucket / ref.key).resolve()
        if not path.is_relative_to(self.root / ref.bucket):
            raise PoisonRecordError(f"object key escapes its bucket: {ref.bucket}/{ref.key}")
        return path

    def get(self, ref: ImageRef) -> bytes:
        """Read the object."""
        try:
            return self.path(ref).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise SourceMissingError(f"no object at {ref.bucket}/{ref.key}") from None

    def put(self, ref: ImageRef, data: bytes, content_type: str) -> None:  # noqa: ARG002
        """Write the object atomically (the content type is implied by the key's extension)."""
        path = self.path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, ref: ImageRef) -> bool:
        """Whether the file exists."""
        return self.path(ref).is_file()

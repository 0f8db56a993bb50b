"""The PP-OCRv4 ONNX models: where they are, and the onnxruntime sessions that run them.

The weights ship inside the ``rapidocr-onnxruntime`` wheel (installed with ``--no-deps``; the
package itself is never imported, only its ONNX files are read). No downloads happen at run time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import onnxruntime as ort

__all__ = ["TextModelMissingError", "find_model_dir", "open_sessions"]

_PACKAGE = "rapidocr_onnxruntime"
_DET_FILE = "ch_PP-OCRv4_det_infer.onnx"
_REC_FILE = "ch_PP-OCRv4_rec_infer.onnx"


class TextModelMissingError(RuntimeError):
    """The PP-OCRv4 ONNX files were not found (the model package is not installed)."""

    retriable = False


def find_model_dir() -> Path:
    """The folder holding the PP-OCRv4 ONNX files, located without importing the package."""
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if locations:
        folder = Path(locations[0]) / "models"
        if (folder / _DET_FILE).is_file() and (folder / _REC_FILE).is_file():
            return folder
    raise TextModelMissingError(
        f"The text detector needs {_DET_FILE} and {_REC_FILE} from the Python package "
        f"'rapidocr-onnxruntime', which is not installed (or lacks them). Run `make`, or "
        "`pip install --no-deps -r requirements-models.txt`."
    )


def open_sessions(
    device: Literal["cpu", "cuda"], threads: int
) -> tuple[ort.InferenceSession, ort.InferenceSession]:
    """The detector's and the recognizer's sessions: on the CUDA provider when ``device`` is
    ``cuda`` and onnxruntime has it, else on the CPU with ``threads`` intra-op threads."""
    folder = find_model_dir()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Worker threads sleep instead of spinning between ops: on a shared or busy CPU a
    # spinning thread pool steals the cores it waits for.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    wanted = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    det = ort.InferenceSession(str(folder / _DET_FILE), options, providers=wanted)
    rec = ort.InferenceSession(str(folder / _REC_FILE), options, providers=wanted)
    return det, rec

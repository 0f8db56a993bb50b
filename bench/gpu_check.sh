#!/usr/bin/env bash
# The GPU checks in one call, for a machine lent with a GPU (docs/models.md, "GPU").
#
#   make gpu-wheels                 # here, once: the wheels that machine lacks, into .whl/
#   bash bench/gpu_check.sh         # there, in the repo's root; writes into $OUT
#
# That machine has python3 with CUDA torch, onnxruntime (CPU build), OpenCV, Pillow, SciPy and
# scikit-image, and no network. It lacks structlog and pytest-asyncio (the test session's
# conftest and pytest settings load them) and the rapidocr-onnxruntime wheel, which pixelgate
# reads only for the PP-OCRv4 ONNX files inside it; `make gpu-wheels` fetches the three (about
# 15 MB), and the call carries .whl. onnxruntime-gpu does not fit the 64 MiB a call may carry,
# so the DBNet and recognizer run on that machine's CPU build: the text stage's figure there is
# the segmenter on the GPU and the ONNX models on its CPU (stage_speed.md says which device).
#
# Writes: gpu.txt (nvidia-smi), gpu_tests.log (the gpu-marked tests), stage_speed.json/.md and
# stage_speed.log (throughput at batch sizes 1, 4 and 16, ours beside the baselines).
set -euo pipefail
out=${OUT:-/tmp/pixelgate-gpu}
mkdir -p "$out"
site=/tmp/pixelgate-site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' \
    | tee -a "$out/gpu.txt"
# -W default: the suite turns warnings into errors; a newer torch's deprecations are not what
# this call checks.
# Both steps run whatever the other gives; the script fails if either did.
status=0
python3 -m pytest -q -m gpu -W default -p no:cacheprovider tests/processors 2>&1 \
    | tee "$out/gpu_tests.log" || status=1
python3 -m bench.stage_speed --device cuda --batch-sizes 1 4 16 --out "$out" 2>&1 \
    | tee "$out/stage_speed.log" || status=1
exit "$status"

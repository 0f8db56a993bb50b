# pixelgate: `make demo` runs the embedded pipeline on generated samples; `make test` runs the
# whole suite, `make test-fast` the unit tests only; `make lint` is ruff and strict mypy. Each
# builds .venv itself (torch pinned to the CPU build by constraints.txt).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The transport benchmark's baseline (Quix Streams) pins an older pydantic, so it gets its own
# venv and never changes the one the tests run in.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
SAMPLES ?= 30
# Test processes (pytest-xdist). Two keep both cores of a CI machine busy: while one process
# waits on the integration tests' servers, the other computes.
TEST_WORKERS ?= 2

.PHONY: demo test test-fast lint bench schemas clean gpu-wheels

$(STAMP): pyproject.toml constraints.txt requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# Both OpenCV wheels install the same cv2 package: an older venv's opencv-python-headless
	@# goes before the contrib build that replaces it is put in (a no-op on a fresh venv).
	$(BIN)/python -m pip uninstall --quiet -y opencv-python-headless opencv-contrib-python-headless
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

$(BENCH_STAMP): pyproject.toml constraints.txt requirements-models.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip uninstall --quiet -y opencv-python-headless \
		opencv-contrib-python-headless
	$(BENCH_VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps -r requirements-models.txt
	touch $(BENCH_STAMP)

demo: $(STAMP)
	rm -rf samples out
	$(BIN)/pixelgate sample samples --count $(SAMPLES)
	$(BIN)/pixelgate run samples/upload --out out --upscale-to 1600
	@echo "open out/report.html in a browser"

# pytest-xdist's worksteal: each process starts with half of the suite (integration tests first,
# see tests/conftest.py) and the one that runs out takes tests from the end of the other's queue.
# Each process starts its own local servers for the integration tests.
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

# The edit-test loop: no servers (integration) and nothing marked slow.
test-fast: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal -m "not integration and not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy schemas processors consumers

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m bench.quality --out bench/results
	$(BIN)/python -m bench.stage_speed --out bench/results
	$(BIN)/python -m bench.pipeline --out bench/results
	$(BIN)/python -m bench.kafka_vs_embedded --out bench/results
	$(BENCH_VENV)/bin/python -m bench.transport --out bench/results

# The wheels bench/gpu_check.sh installs on a lent GPU machine (Python 3.12 there, no network).
gpu-wheels: $(STAMP)
	rm -rf .whl
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	    --implementation cp --platform manylinux2014_x86_64 --platform any -d .whl \
	    rapidocr-onnxruntime==1.4.4 \
	    structlog==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("structlog"))') \
	    pytest-asyncio==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("pytest-asyncio"))')

schemas: $(STAMP)
	$(BIN)/python -m schemas.generate

clean:
	rm -rf $(VENV) $(BENCH_VENV) .whl samples out bench/results .pytest_cache .mypy_cache .ruff_cache

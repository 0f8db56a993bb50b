"""Benchmarks and training scripts: run each as a module from the repository root
(``python -m bench.quality --out bench/results``). Not shipped with the package."""

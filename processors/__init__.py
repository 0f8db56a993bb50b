"""pixelgate processors: pure, batched image work. No Kafka, no S3, no files but model weights."""

__all__: list[str] = []

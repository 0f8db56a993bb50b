"""pixelgate consumers: runtime, transports, stores, runner, settings, CLI. All I/O lives here."""

__all__: list[str] = []

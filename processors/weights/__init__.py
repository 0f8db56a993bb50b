"""Model weights trained by this project and committed with it (see docs/models.md).

Data only: the files here are read with :mod:`importlib.resources` by the processors.
"""

__all__: list[str] = []

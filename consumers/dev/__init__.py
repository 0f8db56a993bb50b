"""Development tooling: the local Tansu + SeaweedFS stack (``pixelgate dev``), the messy vendor
upload generator (``pixelgate sample``) and the text-overlay renderer shared by the sample
generator, the benchmark corpus, segmenter training and the test fixtures.

Nothing in the runtime modules imports this package; the CLI imports its modules inside the
``dev`` and ``sample`` commands. Import the modules directly
(``from consumers.dev.devstack import DevStack``, ``from consumers.dev.sample import
generate_sample``).
"""

__all__: list[str] = []

"""consumers.dev is development tooling: the runtime modules never import it."""

from __future__ import annotations

import subprocess
import sys

RUNTIME = ("consumers.cli", "consumers.embedded", "consumers.worker", "consumers.tools")


def test_runtime_modules_do_not_import_the_dev_package():
    code = (
        f"import sys; import {', '.join(RUNTIME)}; "
        "print(sorted(m for m in sys.modules if m.startswith('consumers.dev')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

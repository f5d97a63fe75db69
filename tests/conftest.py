"""Cross-language tests reuse the Python package's test helpers (an
independent SSE client, server processes) rather than copying them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bindings-python" / "tests"))

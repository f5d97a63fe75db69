import sys
from pathlib import Path

# The harness (bench/run.py, bench/report.py) is a pair of scripts, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

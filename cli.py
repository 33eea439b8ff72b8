"""Run the ihc-score command line from a checkout: ``python cli.py score SLIDES --out DIR``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from ihc_score.cli import main  # noqa: E402

if __name__ == "__main__":
    main()

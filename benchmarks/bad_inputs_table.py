"""Outcome of every bad input of the corpus in ``tests/test_bad_inputs.py``, as a Markdown table.

Run from the repository root::

    .venv/bin/python benchmarks/bad_inputs_table.py [--keep DIR]

Builds the corpus (a good synthetic slide, copies under odd names, empty,
truncated, random, decompression-bomb, grey, 16-bit, 5-channel, fluorescence,
H&E and corrupt-tile files; the real files only when ``../shared/data`` is
present), runs the same ``ihc-score score`` batches as the test (the folder;
the plain images again with ``--mpp 0.5``; the corrupt-tile slides again
under a model with ``analysis.max_failed_tile_fraction`` 0.3) and prints one
row per input and run: status, one-line error or QC flags, and
``failed_tile_fraction``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_MODULE = REPO / "tests" / "test_bad_inputs.py"
SHARED_DATA = REPO.parent / "shared" / "data"


def _load_test_module():  # noqa: ANN202 - a module object
    spec = importlib.util.spec_from_file_location("test_bad_inputs", TEST_MODULE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {TEST_MODULE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Build the corpus and outputs in this (new) folder and keep them.")
    args = parser.parse_args()
    corpus = _load_test_module()
    shared = SHARED_DATA if SHARED_DATA.is_dir() else None
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        lines = list(corpus.iter_table(args.keep, shared))
    else:
        with tempfile.TemporaryDirectory(prefix="ihc-bad-inputs-") as tmp:
            lines = list(corpus.iter_table(Path(tmp), shared))
    print("\n".join(lines))
    if shared is None:
        print("\n(../shared/data absent: the fluorescence NDPI and the H&E slide are left out)")


if __name__ == "__main__":
    main()

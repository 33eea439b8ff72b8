"""Keyed pseudonyms for slide and case identifiers (``--pseudonymize KEYFILE``).

File names and case numbers can carry patient names or record numbers. With
a key file, every output (CSVs, pictures, detections, report, run.json, the
result store) names slides and cases only by keyed hashes (HMAC-SHA256 with
the file's secret key): the same key gives the same pseudonyms in every run,
so results can be joined across batches, but without the key nobody can
recompute or reverse them. The mapping back to the real names is written
only to the key file, which should be kept apart from the results.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ihc_score.errors import IhcScoreError
from ihc_score.fileio import atomic_write

__all__ = ["Pseudonymizer", "load_key_file", "save_key_file"]

KEY_FORMAT = "ihc-score-pseudonym-key/1"


@dataclass(frozen=True)
class Pseudonymizer:
    """Maps slide and case names to keyed pseudonyms and remembers the mapping.

    Attributes
    ----------
    key : bytes
        Secret key (32 random bytes when created).
    path : Path or None
        The key file.
    mapping : dict
        ``{"slides": {pseudonym: name}, "cases": {pseudonym: name}}``, filled
        as names are mapped; saved by :func:`save_key_file`.
    """

    key: bytes
    path: Path | None = None
    mapping: dict[str, dict[str, str]] = field(default_factory=lambda: {"slides": {}, "cases": {}}, compare=False)

    def _hash(self, kind: str, name: str) -> str:
        return hmac.new(self.key, f"{kind}:{name}".encode(), hashlib.sha256).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """Identity of the key (not the key): results stored under one key are not reused under another."""
        return self._hash("fingerprint", "")

    def slide(self, name: str) -> str:
        """Pseudonym of a slide file name, e.g. ``slide-3f2a9c0b1d4e5f60``."""
        pseudo = f"slide-{self._hash('slide', name)}"
        self.mapping["slides"][pseudo] = name
        return pseudo

    def case(self, name: str) -> str:
        """Pseudonym of a case identifier, e.g. ``case-9b1c...``."""
        pseudo = f"case-{self._hash('case', name)}"
        self.mapping["cases"][pseudo] = name
        return pseudo

    def scrub(self, text: str, path: Path, pseudonym: str) -> str:
        """``text`` with the slide's path, file name and stem replaced by its pseudonym (for error messages)."""
        for real in sorted({str(path), str(path.resolve()), path.name, path.stem}, key=len, reverse=True):
            if len(real) >= 3:
                text = text.replace(real, pseudonym)
        return text


def load_key_file(path: Path) -> Pseudonymizer:
    """Read a key file, or create it with a new random key when it does not exist.

    Raises
    ------
    IhcScoreError
        The file exists but is not a key file, or cannot be read or created.
    """
    path = Path(path)
    if not path.exists():
        pz = Pseudonymizer(secrets.token_bytes(32), path)
        save_key_file(pz)
        return pz
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != KEY_FORMAT:
            raise ValueError("not an ihc-score key file")
        key = bytes.fromhex(data["key"])
        mapping = {"slides": dict(data.get("slides", {})), "cases": dict(data.get("cases", {}))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise IhcScoreError(f"--pseudonymize {path}: cannot use it as a key file ({err})") from err
    if len(key) < 16:
        raise IhcScoreError(f"--pseudonymize {path}: the key is too short")
    return Pseudonymizer(key, path, mapping)


def save_key_file(pz: Pseudonymizer) -> None:
    """Write the key and every mapping made so far to ``pz.path``, readable by the owner only.

    Raises
    ------
    OutputError
        The file cannot be written.
    """
    data = {
        "format": KEY_FORMAT,
        "key": pz.key.hex(),
        "slides": dict(sorted(pz.mapping["slides"].items())),
        "cases": dict(sorted(pz.mapping["cases"].items())),
    }
    if pz.path is None:
        raise ValueError("the pseudonymizer has no key file")
    atomic_write(pz.path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    os.chmod(pz.path, 0o600)

"""Change control of a results folder: it holds the results of one model file (with one set of overrides)."""

from __future__ import annotations

import json
from pathlib import Path

from ihc_score.errors import OutputError
from ihc_score.model import Model

__all__ = ["require_same_model"]


def require_same_model(out_dir: Path, model: Model) -> None:
    """Refuse to write into a folder whose ``run.json`` names another model file or other overrides.

    A results folder holds the scores of one model, so its tables never mix
    two models' calls; a new model is scored into a new folder, and compared
    beforehand with ``ihc-score compare-models``.

    Raises
    ------
    OutputError
        The folder's results were made with another model; nothing is changed.
    """
    path = Path(out_dir) / "run.json"
    try:
        before = json.loads(path.read_text(encoding="utf-8")).get("model") or {}
    except FileNotFoundError:
        return
    except (OSError, ValueError, AttributeError):
        raise OutputError(f"{path} is unreadable: score into a new folder") from None
    overrides = [list(o) for o in model.overrides]
    if before.get("sha256") == model.sha256 and before.get("overrides", []) == overrides:
        return
    same_file = before.get("sha256") == model.sha256
    old = f"{before.get('id', '?')} {before.get('version', '?')}, sha256 {str(before.get('sha256', '?'))[:12]}"
    if before.get("overrides"):
        old += ", overrides " + "; ".join("=".join(map(str, o)) for o in before["overrides"])
    raise OutputError(
        f"{out_dir} holds results of {'other overrides of this model' if same_file else 'another model'} ({old}): "
        "a results folder keeps one model's results, so score into a new folder "
        "(ihc-score compare-models shows what the new model would change)"
    )

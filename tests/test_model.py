"""Scoring model: loading, validation messages, overrides, hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ihc_score.errors import ModelError
from ihc_score.model import DEFAULT_MODEL_PATH, default_model, load_model

REPO_MODEL = Path(__file__).resolve().parents[1] / "models" / "s100a9-brain-met.json"


def test_default_model_is_the_repository_file():
    assert DEFAULT_MODEL_PATH.read_bytes() == REPO_MODEL.read_bytes()
    m = default_model()
    assert m.id == "s100a9-brain-met" and m.marker == "S100A9"
    assert m.sha256 == hashlib.sha256(REPO_MODEL.read_bytes()).hexdigest()
    assert m.classification.thresholds == (0.2, 0.4, 0.6)
    assert m.classification.measurement == "dab_cell_mean"
    assert m.analysis.mpp_um == 0.5
    assert "PROVISIONAL" in m.rationale and m.sources


def test_every_parameter_is_written_in_the_model_file():
    """The file, not the code's defaults, decides a score: no section may rely on defaults."""
    data = json.loads(REPO_MODEL.read_text())
    resolved = default_model().to_dict()
    for section in ("analysis", "tissue", "stains", "detection", "classification", "positivity", "confidence", "auto_regions"):
        missing = set(resolved[section]) - set(data[section])
        assert not missing, f"{section} lacks {sorted(missing)}"
    missing = set(resolved["stains"]["estimation"]) - set(data["stains"]["estimation"])
    assert not missing, f"stains.estimation lacks {sorted(missing)}"


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "m.json"
    p.write_text(json.dumps(data))
    return p


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["positivity"].update(cutof=3), "positivity.cutof"),
        (lambda d: d["classification"].update(thresholds=[0.4, 0.2, 0.6]), "increasing"),
        (lambda d: d["positivity"].update(cutoff="high"), "positivity"),
        (lambda d: d.update(colour="brown"), "colour"),
        (lambda d: d.update(schema="other/9"), "schema"),
        (lambda d: d["analysis"].update(mpp_um=-1), "mpp_um"),
        (lambda d: d["stains"].update(dab=[0.1, 0.2]), "dab"),
        (lambda d: d.pop("id"), "'id'"),
        (lambda d: d["stains"]["estimation"].update(bogus=1), "stains.estimation.bogus"),
    ],
)
def test_bad_models_name_the_key(tmp_path, edit, message):
    data = json.loads(REPO_MODEL.read_text())
    edit(data)
    with pytest.raises(ModelError, match=message.replace(".", r"\.")) as info:
        load_model(_write(tmp_path, data))
    assert "\n" not in str(info.value)


def test_not_json_and_missing_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(p)
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path / "absent.json")


def test_overrides_change_one_value_and_are_recorded():
    m = default_model()
    o = m.with_overrides(
        **{"classification.compartment": "nucleus", "classification.thresholds": (0.15,), "positivity.cutoff": None}
    )
    assert o.classification.compartment == "nucleus" and o.classification.thresholds == (0.15,)
    assert o.positivity == m.positivity
    assert o.sha256 == m.sha256 and o.fingerprint != m.fingerprint
    assert o.overrides == (("classification.compartment", "nucleus"), ("classification.thresholds", "0.15"))
    with pytest.raises(ModelError, match="classification.colour"):
        m.with_overrides(**{"classification.colour": "brown"})
    with pytest.raises(ModelError, match="increasing"):
        m.with_overrides(**{"classification.thresholds": (0.5, 0.1, 0.9)})

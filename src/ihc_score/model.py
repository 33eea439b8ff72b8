"""Scoring models: load, validate and override.

A scoring model is a versioned JSON file that holds every parameter that
decides a score (see ``models/s100a9-brain-met.json``). Each section maps onto
the frozen parameter dataclass of the module that uses it, so a key the code
does not know, or a value it rejects, is a :class:`~ihc_score.errors.ModelError`
naming that key. The file's sha256 goes into every result; options given for
one run are recorded as overrides beside it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ihc_score.cells import DetectionParams, PigmentParams
from ihc_score.checks import require_range
from ihc_score.errors import ModelError
from ihc_score.fileio import atomic_write
from ihc_score.regions import AutoRegionParams
from ihc_score.score import (
    CellTypeModel,
    CellTypeParams,
    ClassifyParams,
    IntervalParams,
    PositivityRule,
    resolve_cell_type_model,
)
from ihc_score.stain import RUIFROK_DAB, RUIFROK_HEMATOXYLIN, StainEstimationParams, StainVectors
from ihc_score.tissue import ArtefactParams, TissueParams

__all__ = [
    "AnalysisParams",
    "StainParams",
    "Model",
    "DEFAULT_MODEL_PATH",
    "load_model",
    "default_model",
    "derive_model",
    "require_new_model_path",
    "CASE_RULES",
]

#: The model shipped with the package.
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "s100a9-brain-met.json"

#: Known rules that turn metastasis calls into a case call.
CASE_RULES = ("any_positive",)


@dataclass(frozen=True)
class AnalysisParams:
    """Where and how finely a slide is analysed.

    Parameters
    ----------
    mpp_um : float
        Analysis pixel size, um/px. A slide coarser than this is analysed at
        its own pixel size (never upsampled).
    tile_um : float
        Side of a tile core, um.
    margin_um : float
        Context read on each side of a core, um; wider than two cells so that
        cells on a core's edge are measured whole.
    max_failed_tile_fraction : float
        Largest fraction of a slide's tiles that may fail to decode (and be
        skipped, with a flag) before the slide is ``incomplete`` and not scored.
    """

    mpp_um: float = 0.5
    tile_um: float = 512.0
    margin_um: float = 32.0
    max_failed_tile_fraction: float = 0.05

    def __post_init__(self) -> None:
        require_range("mpp_um", self.mpp_um, low=0.05, high=4.0, unit="um/px")
        require_range("tile_um", self.tile_um, low=32.0, unit="um")
        if not 0.0 <= self.margin_um <= self.tile_um:
            raise ValueError(f"margin_um must be within 0 and tile_um, got {self.margin_um!r}")
        require_range("max_failed_tile_fraction", self.max_failed_tile_fraction, low=0.0, high=1.0, high_open=True)


@dataclass(frozen=True)
class StainParams:
    """Default stain vectors, whether to estimate the slide's own, and the scanner's OD factor.

    ``od_scale`` multiplies every stain concentration (0.25-4; 1 = the
    scanner the thresholds were set on): set by ``ihc-score
    calibrate-scanner`` from one section scanned on both scanners.
    """

    hematoxylin: tuple[float, float, float] = RUIFROK_HEMATOXYLIN
    dab: tuple[float, float, float] = RUIFROK_DAB
    estimate: bool = True
    estimation: StainEstimationParams = field(default_factory=StainEstimationParams)
    od_scale: float = 1.0

    def __post_init__(self) -> None:
        StainVectors(self.hematoxylin, self.dab, od_scale=self.od_scale)  # validates the vectors and the scale
        if not isinstance(self.estimate, bool):
            raise ValueError(f"estimate must be true or false, got {self.estimate!r}")

    def defaults(self, background: tuple[float, float, float] = (255.0, 255.0, 255.0)) -> StainVectors:
        """The model's default vectors with a given background."""
        return StainVectors(self.hematoxylin, self.dab, background=background, od_scale=self.od_scale)


@dataclass(frozen=True)
class Model:
    """A validated scoring model.

    Attributes
    ----------
    id, version, marker : str
        Identity of the model (``id`` and ``version`` go into every result).
    calibrations : tuple of dict
        What derived this model from another (``kind``, date, inputs and
        their sha256, fitted values), oldest first; written by
        :func:`derive_model`, never read by scoring.
    sha256 : str
        Hash of the model file's bytes.
    overrides : tuple of (str, str)
        ``("section.key", value)`` pairs changed for this run only.
    """

    id: str
    version: str
    marker: str
    analysis: AnalysisParams
    tissue: TissueParams
    stains: StainParams
    detection: DetectionParams
    classification: ClassifyParams
    positivity: PositivityRule
    confidence: IntervalParams = field(default_factory=IntervalParams)
    auto_regions: AutoRegionParams = field(default_factory=AutoRegionParams)
    artefacts: ArtefactParams = field(default_factory=ArtefactParams)
    pigment: PigmentParams = field(default_factory=PigmentParams)
    cell_types: CellTypeParams = field(default_factory=CellTypeParams)
    cell_type_model: CellTypeModel | None = None
    case_rule: str = "any_positive"
    rationale: str = ""
    sources: tuple[str, ...] = ()
    calibrations: tuple[dict[str, Any], ...] = ()
    sha256: str = ""
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def fingerprint(self) -> str:
        """sha256 of the file hash and the overrides: equal fingerprints score alike."""
        text = json.dumps([self.sha256, list(self.overrides)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Every resolved parameter, JSON-ready (for ``run.json``)."""
        return _jsonable(dataclasses.asdict(self))

    def with_overrides(self, **dotted: Any) -> Model:
        """A copy with single values replaced, e.g. ``{"classification.compartment": "nucleus"}``.

        Keys use ``section.key``; pass them through ``**{...}``. ``None``
        values are ignored, so CLI options can be passed as they come.

        Raises
        ------
        ModelError
            Unknown key or rejected value.
        """
        model = self
        done = list(self.overrides)
        for key, value in dotted.items():
            if value is None:
                continue
            section, _, name = key.partition(".")
            current = getattr(model, section, None)
            if not name or not dataclasses.is_dataclass(current):
                raise ModelError(f"unknown model option {key!r}")
            names = {f.name for f in dataclasses.fields(current)}
            if name not in names:
                raise ModelError(f"unknown model option {key!r}; known: {', '.join(sorted(names))}")
            try:
                new_section = dataclasses.replace(current, **{name: _tuples(value)})
            except (TypeError, ValueError) as err:
                raise ModelError(f"model option {key}: {err}") from err
            model = dataclasses.replace(model, **{section: new_section})
            done.append((key, _format_override(value)))
        if any(dotted.get(k) is not None for k in ("cell_types.model", "cell_types.sha256")):
            model = dataclasses.replace(model, cell_type_model=_cell_type_model(Path.cwd(), model))
        return dataclasses.replace(model, overrides=tuple(done))


_SECTIONS: dict[str, type] = {
    "analysis": AnalysisParams,
    "tissue": TissueParams,
    "stains": StainParams,
    "detection": DetectionParams,
    "classification": ClassifyParams,
    "positivity": PositivityRule,
    "confidence": IntervalParams,
    "auto_regions": AutoRegionParams,
    "artefacts": ArtefactParams,
    "pigment": PigmentParams,
    "cell_types": CellTypeParams,
}
_NESTED: dict[tuple[str, str], type] = {("stains", "estimation"): StainEstimationParams}
_TOP_KEYS = {"schema", "id", "version", "marker", "case_rule", "rationale", "sources", "calibrations", *_SECTIONS}
SCHEMA = "ihc-score-model/1"


def load_model(path: str | Path | None = None) -> Model:
    """Load and validate a scoring model.

    Parameters
    ----------
    path : str or Path, optional
        JSON model file; the packaged default when ``None``.

    Returns
    -------
    Model

    Raises
    ------
    ModelError
        Unreadable file, bad JSON, unknown key, missing identity or a value
        the parameter classes reject; the message names the file and the key.
    """
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ModelError(f"{path}: cannot read the model file ({err.strerror or err})") from err
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ModelError(f"{path}: a model is a JSON object, got {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ModelError(f"{path}: unknown key {sorted(unknown)[0]!r}; known: {', '.join(sorted(_TOP_KEYS))}")
    if data.get("schema") != SCHEMA:
        raise ModelError(f"{path}: 'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
    for key in ("id", "version", "marker"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ModelError(f"{path}: {key!r} must be a non-empty string")
    if data.get("case_rule", "any_positive") not in CASE_RULES:
        raise ModelError(f"{path}: 'case_rule' must be one of {', '.join(CASE_RULES)}, got {data['case_rule']!r}")
    sections = {name: _section(path, name, cls, data.get(name, {})) for name, cls in _SECTIONS.items()}
    sources = data.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise ModelError(f"{path}: 'sources' must be a list of strings")
    calibrations = data.get("calibrations", [])
    if not isinstance(calibrations, list) or not all(isinstance(c, dict) and "kind" in c for c in calibrations):
        raise ModelError(f"{path}: 'calibrations' must be a list of objects, each with a 'kind'")
    model = Model(
        id=data["id"],
        version=data["version"],
        marker=data["marker"],
        case_rule=data.get("case_rule", "any_positive"),
        rationale=str(data.get("rationale", "")),
        sources=tuple(sources),
        calibrations=tuple(calibrations),
        sha256=hashlib.sha256(raw).hexdigest(),
        **sections,
    )
    return dataclasses.replace(model, cell_type_model=_cell_type_model(path.parent, model, path))


def default_model() -> Model:
    """The packaged default model."""
    return load_model(None)


def require_new_model_path(out: str | Path) -> None:
    """Refuse to write a model over an existing file (change control keeps every version).

    Raises
    ------
    ModelError
        ``out`` exists.
    """
    if Path(out).exists():
        raise ModelError(f"{out} exists: give a new file name (a model file is never overwritten)")


def derive_model(
    source: str | Path | None, out: str | Path, *, new_id: str, values: dict[str, Any], record: dict[str, Any]
) -> Model:
    """Write a new model file: ``source`` with single values changed, a new id and a calibration record.

    The source's text is the starting point (its rationale and sources
    kept); ``values`` are ``section.key`` (or ``section.sub.key``) pairs;
    ``record`` (with a ``kind``) is appended to ``calibrations``; a
    cell-type model named beside the source is named by its full path. A
    model file is never overwritten: change control needs every version kept.

    Returns
    -------
    Model
        The new model, loaded back from ``out`` (so it is valid).

    Raises
    ------
    ModelError
        ``out`` exists, a key is unknown, or a value is rejected (then
        nothing is left at ``out``).
    """
    source, out = Path(source) if source is not None else DEFAULT_MODEL_PATH, Path(out)
    require_new_model_path(out)
    if not new_id.strip():
        raise ModelError("the new model needs a non-empty id")
    load_model(source)  # the source must be a valid model itself
    data = json.loads(source.read_text(encoding="utf-8"))
    for dotted, value in values.items():
        *parents, key = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[key] = value
    data["id"] = new_id
    data["calibrations"] = [*data.get("calibrations", []), record]
    typer = data.get("cell_types", {}).get("model", "")
    if typer and not Path(typer).is_absolute() and (source.parent / typer).is_file():
        data["cell_types"]["model"] = str((source.parent / typer).resolve())  # the new file may live elsewhere
    atomic_write(out, (json.dumps(data, indent=2) + "\n").encode())
    try:
        return load_model(out)
    except ModelError:
        out.unlink(missing_ok=True)
        raise


def _cell_type_model(folder: Path, model: Model, path: Path | None = None) -> CellTypeModel | None:
    """The cell-type model the ``cell_types`` section names (relative to ``folder``), checked; None without one."""
    try:
        return resolve_cell_type_model(folder, model.cell_types, margin_um=model.analysis.margin_um)
    except ValueError as err:
        raise ModelError(f"{path}: {err}" if path else str(err)) from err


def _section(path: Path, name: str, cls: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ModelError(f"{path}: {name!r} must be a JSON object")
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ModelError(f"{path}: unknown key '{name}.{key}'; known: {', '.join(sorted(known))}")
        nested = _NESTED.get((name, key))
        kwargs[key] = _section(path, f"{name}.{key}", nested, value) if nested else _tuples(value)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ModelError(f"{path}: '{name}': {err}") from err
    _check_types(path, name, obj)
    return obj


def _check_types(path: Path, name: str, obj: Any) -> None:
    """Reject a string where a number belongs and the like, naming the key."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        hint, value = hints.get(f.name), getattr(obj, f.name)
        expected = {float: (int, float), int: (int,), bool: (bool,), str: (str,)}.get(hint)  # type: ignore[call-overload]
        if expected is None:
            continue
        if isinstance(value, bool) and hint is not bool or not isinstance(value, expected):
            raise ModelError(f"{path}: '{name}.{f.name}' must be {hint.__name__}, got {value!r}")


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _format_override(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

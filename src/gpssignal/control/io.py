"""GPS controller model files (JSON): ``write_model`` / ``read_model``.

A model file is self-contained: the projection origin, the stretch
polylines in WGS84, every threshold and parameter, and the provenance of its
training (data files and their SHA-256, days, seeds, search results,
held-out evaluation, package version). A replay needs only the model and a
probe file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gpssignal._files import ordinary_permissions
from gpssignal.control.gps import GpsModel, JunctionModel, StretchModel
from gpssignal.errors import ModelError

__all__ = [
    "MODEL_KIND",
    "ModelError",
    "model_from_dict",
    "model_to_dict",
    "read_model",
    "write_model",
]

MODEL_KIND = "gpssignal-gps-model"


def model_to_dict(model: GpsModel) -> dict[str, Any]:
    """Return the model as plain JSON-ready data, tagged with its kind."""
    d = asdict(model)
    d["projection_deg"] = list(model.projection_deg)
    return {"kind": MODEL_KIND, **d}


def model_from_dict(d: dict[str, Any], where: str = "model") -> GpsModel:
    """Build a model from :func:`model_to_dict`'s data; ``where`` names it in errors."""
    if d.get("kind") != MODEL_KIND:
        raise ModelError(f"{where}: kind = {d.get('kind')!r}, not a {MODEL_KIND} file")
    d = dict(d)
    d.pop("kind")
    try:
        junctions = [JunctionModel(**j) for j in d.pop("junctions")]
        stretches = [StretchModel(**s) for s in d.pop("stretches")]
        proj = tuple(d.pop("projection_deg"))
        return GpsModel(projection_deg=(float(proj[0]), float(proj[1])), junctions=junctions,
                        stretches=stretches, **d)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelError(f"{where}: malformed model ({exc})") from None


def write_model(model: GpsModel, path: str | Path) -> Path:
    """Write ``model`` as JSON, atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    ordinary_permissions(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(model_to_dict(model), f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def read_model(path: str | Path) -> GpsModel:
    """Read a model file.

    Raises
    ------
    ModelError
        Missing file, not JSON, not a model, or a bad value (named).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"model file {str(p)!r}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"model file {str(p)!r}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"model file {str(p)!r}: not a {MODEL_KIND} file")
    return model_from_dict(data, where=f"model file {str(p)!r}")

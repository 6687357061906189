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

from gpssignal._files import FileRefusedError, ordinary_permissions, read_regular_bytes
from gpssignal.control.gps import GpsModel, JunctionModel, StretchModel
from gpssignal.errors import ModelError

#: Largest model file read [bytes]. A model is a few kB per junction (the
#: search table goes to a separate CSV), so 64 MiB is thousands of junctions;
#: a device or a wrong file is refused before it can exhaust the memory.
MAX_MODEL_BYTES = 64 * 2**20

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


#: Upper bounds of the model's numbers: beyond them a value is a typo or an
#: attack, and would overflow the run-time path's integer milliseconds.
_MAX_TIME_S = 7 * 86400.0
_MAX_DISTANCE_M = 1e6
_MAX_SPEED_KMH = 400.0
_MAX_POINTS = 10**9
#: The model's own numbers: field -> (low, high), both included.
_MODEL_NUMBERS = {
    "window_s": (0.0, _MAX_TIME_S), "min_dwell_s": (0.0, _MAX_TIME_S),
    "stale_after_s": (0.0, _MAX_TIME_S), "decision_interval_s": (0.0, 3600.0),
    "max_distance_m": (0.0, _MAX_DISTANCE_M), "max_heading_diff_deg": (0.0, 180.0),
}
#: A stretch's numbers: field -> (low, high).
_STRETCH_NUMBERS = {
    "length_m": (0.0, _MAX_DISTANCE_M), "speed_limit_kmh": (0.0, _MAX_SPEED_KMH),
    "free_flow_kmh": (0.0, _MAX_SPEED_KMH), "threshold_low_kmh": (0.0, _MAX_SPEED_KMH),
    "threshold_high_kmh": (0.0, _MAX_SPEED_KMH),
}
_STRETCH_TEXT = ("id", "junction")
_JUNCTION_TEXT = ("id", "default_program", "relief_program")


def _short(value: Any) -> str:
    """``repr`` of a bad value, cut to one readable piece."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 \
        else f"<integer of {len(str(abs(value)))} digits>"
    return text if len(text) <= 60 else text[:57] + "..."


def _number(where: str, field: str, value: Any, low: float, high: float) -> float:
    """Return ``value`` as a float in ``[low, high]``; a :class:`ModelError` otherwise."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and isinstance(value, int) and abs(value) > 10**15:
        ok = False
    if not ok or not low <= float(value) <= high:
        raise ModelError(f"{where}: {field} = {_short(value)}: must be a number in "
                         f"[{low:g}, {high:g}]")
    return value  # unchanged (an int stays an int): a model reads back as written


def _text(where: str, field: str, value: Any) -> str:
    """``value`` must be a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ModelError(f"{where}: {field} = {_short(value)}: must be a non-empty string")
    return value


def _keys(where: str, field: str, d: Any, required: tuple[str, ...],
          optional: tuple[str, ...]) -> dict[str, Any]:
    """``d`` must be an object with the required keys and no unknown ones."""
    if not isinstance(d, dict):
        raise ModelError(f"{where}: {field} = {_short(d)}: must be an object")
    for k in required:
        if k not in d:
            raise ModelError(f"{where}: {field}.{k}: missing")
    for k in d:
        if k not in required and k not in optional:
            raise ModelError(f"{where}: {field}.{k}: unknown field")
    return d


def model_from_dict(d: dict[str, Any], where: str = "model") -> GpsModel:
    """Build a model from :func:`model_to_dict`'s data; ``where`` names it in errors.

    Every field is checked: its type, its range, and that ids match.

    Raises
    ------
    ModelError
        Naming the first bad field and its value.
    """
    if not isinstance(d, dict) or d.get("kind") != MODEL_KIND:
        kind = d.get("kind") if isinstance(d, dict) else None
        raise ModelError(f"{where}: kind = {_short(kind)}, not a {MODEL_KIND} file")
    try:
        args = _parts(where, d)
        _check_ids(where, args)
        return GpsModel(**args)
    except ModelError as exc:
        msg = str(exc)
        raise ModelError(msg if msg.startswith(where) else f"{where}: {msg}") from None


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
        text = read_regular_bytes(p, MAX_MODEL_BYTES).decode("utf-8")
    except FileRefusedError as exc:
        raise ModelError(f"model file {str(p)!r}: {exc}") from None
    except OSError as exc:
        raise ModelError(f"model file {str(p)!r}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"model file {str(p)!r}: not UTF-8 text (byte "
                         f"{exc.object[exc.start]:#04x} at offset {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"model file {str(p)!r}: not JSON ({exc})") from None
    except RecursionError:
        raise ModelError(f"model file {str(p)!r}: nested too deeply to be a model") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ModelError(f"model file {str(p)!r}: not a usable JSON number ({exc})") \
            from None
    if not isinstance(data, dict):
        raise ModelError(f"model file {str(p)!r}: not a {MODEL_KIND} file")
    return model_from_dict(data, where=f"model file {str(p)!r}")


def _polyline(where: str, field: str, value: Any) -> list[list[float]]:
    """At least two ``[lat, lon]`` points in degrees."""
    if not isinstance(value, list) or len(value) < 2:
        raise ModelError(f"{where}: {field} = {_short(value)}: must be a list of at least two "
                         "[lat, lon] points")
    out = []
    for k, pt in enumerate(value):
        if not isinstance(pt, list) or len(pt) != 2:
            raise ModelError(f"{where}: {field}[{k}] = {_short(pt)}: must be [lat, lon]")
        out.append([_number(where, f"{field}[{k}][0]", pt[0], -90.0, 90.0),
                    _number(where, f"{field}[{k}][1]", pt[1], -180.0, 180.0)])
    return out


def _stretch(where: str, k: int, d: Any) -> StretchModel:
    """Check and build ``stretches[k]``."""
    f = f"stretches[{k}]"
    d = _keys(where, f, d, (*_STRETCH_TEXT, "polyline_deg", *_STRETCH_NUMBERS),
              ("profile_kmh",))
    profile = d.get("profile_kmh", {})
    if not isinstance(profile, dict):
        raise ModelError(f"{where}: {f}.profile_kmh = {_short(profile)}: must be an object")
    text: dict[str, Any] = {n: _text(where, f"{f}.{n}", d[n]) for n in _STRETCH_TEXT}
    numbers: dict[str, Any] = {n: _number(where, f"{f}.{n}", d[n], *r)
                               for n, r in _STRETCH_NUMBERS.items()}
    return StretchModel(
        **text, polyline_deg=_polyline(where, f"{f}.polyline_deg", d["polyline_deg"]),
        **numbers, profile_kmh={str(key): _number(where, f"{f}.profile_kmh.{key}", v, 0.0,
                                       _MAX_SPEED_KMH) for key, v in profile.items()})


def _junction(where: str, k: int, d: Any) -> JunctionModel:
    """Check and build ``junctions[k]``."""
    f = f"junctions[{k}]"
    d = _keys(where, f, d, (*_JUNCTION_TEXT, "stretches"), ())
    if not isinstance(d["stretches"], list):
        raise ModelError(f"{where}: {f}.stretches = {_short(d['stretches'])}: must be a list")
    return JunctionModel(**{n: _text(where, f"{f}.{n}", d[n]) for n in _JUNCTION_TEXT},
                         stretches=[_text(where, f"{f}.stretches[{i}]", s)
                                    for i, s in enumerate(d["stretches"])])


def _parts(where: str, d: dict[str, Any]) -> dict[str, Any]:
    """Check every field of a model's data; return :class:`GpsModel`'s arguments."""
    d = _keys(where, "model", d, ("kind", "projection_deg", "junctions", "stretches"),
              (*_MODEL_NUMBERS, "min_points", "provenance"))
    proj = d["projection_deg"]
    if not isinstance(proj, list) or len(proj) != 2:
        raise ModelError(f"{where}: projection_deg = {_short(proj)}: must be [lat, lon]")
    args: dict[str, Any] = {"projection_deg": (
        float(_number(where, "projection_deg[0]", proj[0], -90.0, 90.0)),
        float(_number(where, "projection_deg[1]", proj[1], -180.0, 180.0)))}
    for name in ("junctions", "stretches"):
        if not isinstance(d[name], list):
            raise ModelError(f"{where}: {name} = {_short(d[name])}: must be a list")
    args["junctions"] = [_junction(where, k, j) for k, j in enumerate(d["junctions"])]
    args["stretches"] = [_stretch(where, k, s) for k, s in enumerate(d["stretches"])]
    for name, (low, high) in _MODEL_NUMBERS.items():
        if name in d:
            args[name] = _number(where, name, d[name], low, high)
    if "min_points" in d:
        mp = d["min_points"]
        if not isinstance(mp, int) or isinstance(mp, bool) or not 1 <= mp <= _MAX_POINTS:
            raise ModelError(f"{where}: min_points = {_short(mp)}: must be an integer in "
                             f"[1, {_MAX_POINTS}]")
        args["min_points"] = mp
    if not isinstance(d.get("provenance", {}), dict):
        raise ModelError(f"{where}: provenance = {_short(d['provenance'])}: must be an object")
    args["provenance"] = d.get("provenance", {})
    return args


def _check_ids(where: str, model_args: dict[str, Any]) -> None:
    """Ids are unique, and every stretch's junction is one of the model's junctions."""
    junctions = [j.id for j in model_args["junctions"]]
    stretches = [s.id for s in model_args["stretches"]]
    for field, ids in (("junctions", junctions), ("stretches", stretches)):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ModelError(f"{where}: {field} id = {dup[0]!r}: given more than once")
    for k, s in enumerate(model_args["stretches"]):
        if s.junction not in junctions:
            raise ModelError(f"{where}: stretches[{k}].junction = {s.junction!r}: not one "
                             f"of the model's junctions {junctions}")

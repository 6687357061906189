"""scripts/imported_gps_setup.py: relief program and stretch for an imported junction.

Checked on SUMO's RiLSA example 2 as imported (tests/data/sumo_import): the
relief program gives the critical group the template's ``relief_shift_s``
more green, keeps the cycle and every clearance (a valid junction), takes
the time from groups that are red for the critical group, and the result
passes the scenario's validation with its stretch on the critical link.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gpssignal.estimate.junctions import read_template
from gpssignal.interop.sumo_import import import_sumo, write_import
from gpssignal.model.io import read_scenario

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "sumo_import"


def _script():
    spec = importlib.util.spec_from_file_location(
        "imported_gps_setup", ROOT / "scripts" / "imported_gps_setup.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("k", [2, 3])
def test_relief_program_moves_green_to_the_critical_group(k: int, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    d = DATA / f"rilsa{k}"
    res = import_sumo(d / f"rilsa{k}.net.xml", [d / "vtypes.add.xml", d / "flows.rou.xml"],
                      additional=[d / f"rilsa{k}_tls.add.xml"], end_s=3600.0,
                      clock0_s=7 * 3600.0, origin=(52.52, 13.40))
    src = write_import(res, tmp_path / "imported.toml")
    out = tmp_path / "gps.toml"
    mod = _script()
    monkeypatch.setattr("sys.argv", ["x", str(src), str(out)])
    mod.main()
    sc = read_scenario(out)            # validates: programs, switches, stretch
    j = sc.junctions[0]
    own, relief = j.program(j.default_program), j.program("relief")
    shift = float(read_template().values["relief_shift_s"])
    g, link, _ = mod.critical_group(res.scenario, 1850.0)
    assert relief.cycle_s == own.cycle_s
    assert relief.green_duration_s(g) == pytest.approx(own.green_duration_s(g) + shift)
    # Time is moved, not added: no group's green changes by more than the shift.
    for h in j.groups:
        assert abs(relief.green_duration_s(h) - own.green_duration_s(h)) <= shift + 1e-9
    assert j.relief_program == "relief"
    st = sc.stretches[0]
    assert st.links == (link,) and st.end_m == sc.link(link).length_m

"""OpenStreetMap to a gpssignal scenario: netconvert, then :func:`import_sumo`.

:func:`osm_to_net` runs SUMO's ``netconvert`` (the sumo extra) with
:data:`NETCONVERT_OSM_OPTIONS` (docs/import.md explains each); the network
it writes is then imported like any SUMO network.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from gpssignal.interop.sumo import sumo_binary
from gpssignal.interop.sumo_import import SumoImportError

__all__ = ["NETCONVERT_OSM_OPTIONS", "osm_to_net"]

#: netconvert options for a junction-scale OpenStreetMap extract (docs/import.md).
NETCONVERT_OSM_OPTIONS = (
    "--geometry.remove",            # merge shape-only nodes into edges
    "--roundabouts.guess",
    "--ramps.guess",
    "--junctions.join",             # one node per intersection (dual carriageways)
    "--tls.guess-signals",          # OSM traffic_signals nodes around a junction -> its light
    "--tls.discard-simple",
    "--tls.join",
    "--tls.default-type", "static",
    "--keep-edges.by-vclass", "passenger",   # roads only: no footways, cycleways, rail
    "--remove-edges.isolated",
    "--no-turnarounds",
    "--no-internal-links",          # a gpssignal junction is a point
    "--output.street-names",
    "--proj.utm",                   # keeps the projection, so lat/lon survive
)


def osm_to_net(osm: str | Path, net_out: str | Path) -> Path:
    """Build a SUMO network from an OSM XML file with netconvert.

    Raises
    ------
    SumoNotFound
        Without the sumo extra.
    SumoImportError
        If netconvert fails (its last message line is quoted).
    """
    out = Path(net_out)
    proc = subprocess.run([str(sumo_binary("netconvert")), "--osm-files", str(osm),
                           "--output-file", str(out), *NETCONVERT_OSM_OPTIONS,
                           "--no-warnings"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise SumoImportError(f"OSM file {osm}: netconvert failed: {last[:300]}")
    return out

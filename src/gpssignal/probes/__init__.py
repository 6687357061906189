"""GPS probe stream: sampling from a running simulation, anonymisation, probe files."""

from gpssignal.errors import ProbeFileError
from gpssignal.probes.io import (
    DROP_REASONS,
    MAX_SPEED_KMH,
    PROBE_COLUMNS,
    DropReport,
    ProbeRead,
    import_fcd,
    read_probes,
    sim_seconds_from_utc,
    stream_to_frame,
    utc_from_sim_seconds,
    write_probes,
)
from gpssignal.probes.sampler import ProbeFeed, ProbeSampler, ProbeStream, pseudonyms

__all__ = [
    "DROP_REASONS",
    "MAX_SPEED_KMH",
    "PROBE_COLUMNS",
    "DropReport",
    "ProbeFeed",
    "ProbeFileError",
    "ProbeRead",
    "ProbeSampler",
    "ProbeStream",
    "import_fcd",
    "pseudonyms",
    "read_probes",
    "sim_seconds_from_utc",
    "stream_to_frame",
    "utc_from_sim_seconds",
    "write_probes",
]

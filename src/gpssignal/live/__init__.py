"""Live operation: the trained GPS controller as an RSMP supervisor.

* :mod:`~gpssignal.live.protocol`: RSMP 3.2 messages (pure functions);
* :mod:`~gpssignal.live.transport`: one connection end, the message log;
* :mod:`~gpssignal.live.feed`: the live probe feed (NDJSON/CSV lines);
* :mod:`~gpssignal.live.config`: the supervisor's configuration file;
* :mod:`~gpssignal.live.supervisor`: ``serve``;
* :mod:`~gpssignal.live.site`: ``rsmp-site``, the simulator as RSMP sites;
* :mod:`~gpssignal.live.sil`: ``sil``, both ends on localhost and the comparison.

See docs/live.md.
"""

from gpssignal.live.config import LiveConfig, LiveConfigError, SiteConfig, read_live_config
from gpssignal.live.sil import SilResult, compare_with_simulation, run_sil
from gpssignal.live.site import SiteFaults, VirtualSite
from gpssignal.live.supervisor import Supervisor

__all__ = ["LiveConfig", "LiveConfigError", "SilResult", "SiteConfig", "SiteFaults",
           "Supervisor", "VirtualSite", "compare_with_simulation", "read_live_config",
           "run_sil"]

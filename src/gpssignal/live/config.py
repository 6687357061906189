"""The supervisor's configuration: where to listen, the sites, their plans and codes.

A TOML file (see docs/live.md)::

    [rsmp]
    listen = "0.0.0.0:12111"
    watchdog_s = 60

    [[site]]
    junction = "J1"
    site_id = "KK+AG9998=001"
    component_id = "KK+AG9998=001TC000"
    security_code_env = "GPSSIGNAL_RSMP_CODE_J1"
    plans = { base = 1, peak = 2 }

The security code comes from an environment variable (``security_code_env``)
or, for tests, the file (``security_code``); it is never logged.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpssignal._files import FileRefusedError, read_regular_bytes
from gpssignal.errors import GpssignalError
from gpssignal.live.protocol import brief

__all__ = ["LiveConfig", "LiveConfigError", "SiteConfig", "check_config_model", "read_live_config"]

#: Highest RSMP time plan number (the SXL's range 1-255).
MAX_PLAN = 255
#: Largest configuration file read [bytes]: a site takes about 300 bytes.
MAX_CONFIG_BYTES = 1_000_000
#: Range of each time setting [s]: below it a watchdog or retry would flood the
#: link and the log, above it (a day) a fault would go unnoticed for good.
TIME_RANGE_S = {"watchdog_s": (0.1, 86_400.0), "ack_timeout_s": (0.1, 86_400.0),
                "command_timeout_s": (0.1, 86_400.0), "retry_backoff_s": (0.001, 86_400.0)}


class LiveConfigError(GpssignalError):
    """The live configuration (file or options) is invalid."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteConfig:
    """One junction's controller as an RSMP site.

    Parameters
    ----------
    junction : str
        The junction id in the model.
    site_id, component_id : str
        RSMP site id (``sId``/``ntsOId``) and the controller's component id (``cId``).
    security_code : str
        Security code 2 of the controller (M0002 needs it).
    plans : dict[str, int]
        RSMP time plan number of each program name.
    """

    junction: str
    site_id: str
    component_id: str
    security_code: str = field(repr=False)
    plans: dict[str, int]

    def __post_init__(self) -> None:
        """Check ids and plan numbers."""
        for f in ("junction", "site_id", "component_id"):
            if not isinstance(getattr(self, f), str) or not getattr(self, f):
                raise LiveConfigError(f"site.{f} = {brief(getattr(self, f))}: must be a "
                                      "non-empty string")
        if not isinstance(self.security_code, str) or not self.security_code:
            raise LiveConfigError(f"site[{self.junction}].security_code: must be a non-empty "
                                  "string")
        for name, n in self.plans.items():
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_PLAN:
                raise LiveConfigError(f"site[{brief(self.junction)}].plans.{_key(name)} = "
                                      f"{brief(n)}: must be an integer 1-{MAX_PLAN}")
        numbers = list(self.plans.values())
        twice = next((n for n in numbers if numbers.count(n) > 1), None)
        if twice is not None:
            # program_of could not tell the programs apart: a command for one
            # would set the other.
            raise LiveConfigError(f"site[{brief(self.junction)}].plans: plan number {twice} "
                                  "given to two programs")

    def program_of(self, plan: int) -> str | None:
        """Return the program name of a plan number (``None`` if not configured)."""
        return next((p for p, n in self.plans.items() if n == plan), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveConfig:
    """The supervisor's settings.

    Parameters
    ----------
    host : str
        Address to listen on for RSMP sites.
    port : int
        TCP port (0: any free port, for tests).
    watchdog_s : float
        Interval of Watchdog messages [s].
    ack_timeout_s : float
        Wait for a MessageAck [s]; a message not acknowledged in time counts as lost.
    command_timeout_s : float
        Wait for a CommandResponse after the acknowledgement [s].
    command_retries : int
        Further attempts of a refused or unanswered command [-].
    retry_backoff_s : float
        Wait before the first retry, doubled for each further one [s].
    sites : list of SiteConfig
    """

    host: str = "127.0.0.1"
    port: int = 12111
    watchdog_s: float = 60.0
    ack_timeout_s: float = 5.0
    command_timeout_s: float = 10.0
    command_retries: int = 3
    retry_backoff_s: float = 1.0
    sites: list[SiteConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Check the numbers and that site ids are unique."""
        for f, (lo, hi) in TIME_RANGE_S.items():
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
                raise LiveConfigError(f"rsmp.{f} = {brief(v)}: must be a number of seconds "
                                      f"{lo:g}-{hi:g}")
        if not isinstance(self.host, str) or not self.host:
            raise LiveConfigError(f"rsmp.listen host = {brief(self.host)}: must be a host name or "
                                  "address")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise LiveConfigError(f"rsmp.listen port = {brief(self.port)}: must be 0-65535")
        if not isinstance(self.command_retries, int) or isinstance(self.command_retries, bool) \
                or not 0 <= self.command_retries <= 10:
            raise LiveConfigError(f"rsmp.command_retries = {brief(self.command_retries)}: must be "
                                  "an integer 0-10")
        seen: set[str] = set()
        for s in self.sites:
            if s.site_id in seen:
                raise LiveConfigError(f"site.site_id = {brief(s.site_id)}: used twice")
            seen.add(s.site_id)

    def site_of(self, junction: str) -> SiteConfig | None:
        """Return the site of a junction (``None`` if not configured)."""
        return next((s for s in self.sites if s.junction == junction), None)


def _key(name: object) -> str:
    """Return a TOML key as shown in a message: as is if a plain name, else quoted."""
    return name if isinstance(name, str) and name.isidentifier() else brief(name)


def _listen(text: object) -> tuple[str, int]:
    if not isinstance(text, str) or ":" not in text:
        raise LiveConfigError(f"rsmp.listen = {brief(text)}: must be HOST:PORT")
    host, _, port = text.rpartition(":")
    if not port.isascii() or not port.isdigit() or len(port) > 5:
        raise LiveConfigError(f"rsmp.listen = {text[:80]!r}: port must be a number 0-65535")
    return host, int(port)


def _site(row: Any, k: int) -> SiteConfig:
    if not isinstance(row, dict):
        raise LiveConfigError(f"site[{k}] = {brief(row)}: must be a table")
    known = {"junction", "site_id", "component_id", "security_code", "security_code_env",
             "plans"}
    extra = sorted(set(row) - known)
    if extra:
        raise LiveConfigError(f"site[{k}].{_key(extra[0])}: unknown key (known: "
                              f"{sorted(known)})")
    code = row.get("security_code")
    env = row.get("security_code_env")
    if env is not None:
        if not isinstance(env, str) or not env or "\0" in env or "=" in env:
            raise LiveConfigError(f"site[{k}].security_code_env = {brief(env)}: must be the "
                                  "name of an environment variable")
        code = os.environ.get(env)
        if code is None:
            raise LiveConfigError(f"site[{k}].security_code_env = {brief(env)}: the environment "
                                  "variable is not set")
    if not isinstance(code, str) or not code:
        raise LiveConfigError(f"site[{k}].security_code: missing (give security_code_env or "
                              "security_code)")
    plans = row.get("plans")
    if not isinstance(plans, dict) or not plans:
        raise LiveConfigError(f"site[{k}].plans = {brief(plans)}: must map program names to plan "
                              "numbers")
    return SiteConfig(junction=row.get("junction", ""), site_id=row.get("site_id", ""),
                      component_id=row.get("component_id", ""), security_code=code,
                      plans=dict(plans))


def read_live_config(path: str | Path) -> LiveConfig:
    """Read a live configuration file (TOML); :class:`LiveConfigError` if invalid."""
    p = Path(path)
    try:
        data = tomllib.loads(read_regular_bytes(p, MAX_CONFIG_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise LiveConfigError(f"config {str(p)!r}: not found") from None
    except FileRefusedError as exc:
        raise LiveConfigError(f"config {str(p)!r}: {exc}") from None
    except OSError as exc:
        raise LiveConfigError(f"config {str(p)!r}: cannot read ({exc.strerror or exc})") \
            from None
    except UnicodeDecodeError:
        raise LiveConfigError(f"config {str(p)!r}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise LiveConfigError(f"config {str(p)!r}: not valid TOML ({exc})") from None
    except RecursionError:
        raise LiveConfigError(f"config {str(p)!r}: arrays or tables nested too deep to "
                              "read") from None
    except ValueError as exc:  # an integer literal of thousands of digits
        raise LiveConfigError(f"config {str(p)!r}: {str(exc).splitlines()[0][:120]}") \
            from None
    rsmp = data.get("rsmp", {})
    if not isinstance(rsmp, dict):
        raise LiveConfigError(f"config.rsmp = {brief(rsmp)}: must be a table")
    unknown = sorted(set(data) - {"rsmp", "site"}) + sorted(
        set(rsmp) - {"listen", "watchdog_s", "ack_timeout_s", "command_timeout_s",
                     "command_retries", "retry_backoff_s"})
    if unknown:  # a misspelt setting would silently keep its default
        raise LiveConfigError(f"config {str(p)!r}: unknown key {_key(unknown[0])} (known: "
                              "[rsmp] listen, watchdog_s, ack_timeout_s, command_timeout_s, "
                              "command_retries, retry_backoff_s; [[site]])")
    opts: dict[str, Any] = {}
    if "listen" in rsmp:
        opts["host"], opts["port"] = _listen(rsmp["listen"])
    for f in ("watchdog_s", "ack_timeout_s", "command_timeout_s", "command_retries",
              "retry_backoff_s"):
        if f in rsmp:
            opts[f] = rsmp[f]
    sites = data.get("site", [])
    if not isinstance(sites, list) or not sites:
        raise LiveConfigError(f"config {str(p)!r}: no [[site]]")
    return LiveConfig(sites=[_site(r, k) for k, r in enumerate(sites)], **opts)


def check_config_model(config: LiveConfig, junctions: list[tuple[str, str, str]]) -> None:
    """Check that every model junction ``(id, default, relief)`` has a site with both plans."""
    for jid, default, relief in junctions:
        site = config.site_of(jid)
        if site is None:
            raise LiveConfigError(f"site.junction = {jid!r}: the model controls it but the "
                                  "config has no [[site]] for it")
        for prog in (default, relief):
            if prog not in site.plans:
                raise LiveConfigError(f"site[{jid}].plans: no plan number for program "
                                      f"{prog!r}")

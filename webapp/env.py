"""Static configuration from the environment (contract in ARCHITECTURE.md).

Each variable has a working default for simulation on one machine; a bad value stops
start-up with a message naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
KIOSK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
"""The kiosk browser runs on the station itself and loads the HMI from one of these."""
ALL_INTERFACES = ("", "0.0.0.0", "::")  # WEB_HOST values that serve every network, the LAN's too
DEFAULT_PORTS = {"http": 80, "https": 443}
HOST_NAME = re.compile(r"[a-z0-9_\-:%][a-z0-9._\-:%]*")  # a name or address; no wildcard, no ".x"


class EnvError(ValueError):
    """An environment variable has a value the station cannot use."""


@dataclass(frozen=True)
class StationEnv:
    redis_url: str
    database_url: str
    station_config: Path
    data_dir: Path
    csms_url: str
    charge_point_id: str
    web_port: int
    hmi_allowed_origins: tuple[str, ...]
    """Pages that may open the HMI websocket (HMI_ALLOWED_ORIGINS); default: the kiosk's own."""
    web_https: bool
    """WEB_HTTPS=1: the configurator is reached over HTTPS through a TLS proxy in front."""
    fota_keep_packages: int = 3
    """FOTA_KEEP_PACKAGES: update packages kept in each of packages/downloads, installed/<kind>,
    failed/<kind> (the newest; older ones are deleted)."""
    fota_flash_attempts: int = 3
    """FOTA_FLASH_ATTEMPTS (1..10): uploads per charge controller before its flash fails (the
    update_controllers job of a controller-firmware update)."""
    firmware_dir: Path = Path("/opt/station/firmware")
    """STATION_FIRMWARE_DIR: where the controller-firmware deb installs its bundle folders."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> StationEnv:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("STATION_DATA_DIR", str(REPO_ROOT / "var"))).resolve()
        port_text = env.get("WEB_PORT", "8000")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise EnvError(f"WEB_PORT must be a TCP port number, got {port_text!r}")
        csms_url = env.get("OCPP_CSMS_URL", "ws://127.0.0.1:9000/ocpp").rstrip("/")
        if not csms_url.startswith(("ws://", "wss://")):
            raise EnvError(f"OCPP_CSMS_URL must start with ws:// or wss://, got {csms_url!r}")
        return cls(
            redis_url=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            database_url=env.get("DATABASE_URL", f"sqlite:///{data_dir / 'station.sqlite3'}"),
            station_config=Path(env.get("STATION_CONFIG", str(REPO_ROOT / "ops" / "station.sim.toml"))),
            data_dir=data_dir,
            csms_url=csms_url,
            charge_point_id=env.get("OCPP_CHARGE_POINT_ID", "SIM-0001"),
            web_port=int(port_text),
            hmi_allowed_origins=_origins(env, "HMI_ALLOWED_ORIGINS", default=_own_origins(env, port_text)),
            web_https=_flag(env, "WEB_HTTPS"),
            fota_keep_packages=_count(env, "FOTA_KEEP_PACKAGES", default=3),
            fota_flash_attempts=_count(env, "FOTA_FLASH_ATTEMPTS", default=3, maximum=10),
            firmware_dir=Path(env.get("STATION_FIRMWARE_DIR", "/opt/station/firmware")),
        )

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        """Runtime files (simulated serial ports' links, pid files)."""
        return self.data_dir / "run"

    @property
    def archives_dir(self) -> Path:
        return self.data_dir / "archives"

    @property
    def packages_dir(self) -> Path:
        """Update packages: downloads/, staged|installed|failed/<kind>/, status/ (ops/start.sh)."""
        return self.data_dir / "packages"

    @property
    def keys_dir(self) -> Path:
        """Keys provisioned at activation: update.key, manufacturer-root.pem."""
        return self.data_dir / "keys"


def _flag(env: Mapping[str, str], name: str) -> bool:
    text = env.get(name, "0")
    if text not in ("0", "1"):
        raise EnvError(f"{name} must be 0 or 1, got {text!r}")
    return text == "1"


def _count(env: Mapping[str, str], name: str, *, default: int, maximum: int | None = None) -> int:
    text = env.get(name, str(default))
    if not text.isdigit() or int(text) < 1:
        raise EnvError(f"{name} must be a whole number of at least 1, got {text!r}")
    if maximum is not None and int(text) > maximum:
        raise EnvError(f"{name} must be at most {maximum}, got {text!r}")
    return int(text)


def _own_origins(env: Mapping[str, str], port_text: str) -> tuple[str, ...]:
    """The web service's own origins: the kiosk's, and WEB_HOST's when it names one address
    (the kiosk then has to load the page from there)."""
    hosts = list(KIOSK_HOSTS)
    web_host = env.get("WEB_HOST", "127.0.0.1")
    if web_host not in ALL_INTERFACES:
        hosts.append(f"[{web_host}]" if ":" in web_host else web_host)
    return tuple(f"http://{host}:{port_text}" for host in hosts)


def _origins(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list of web origins; no wildcards: a page that is not listed must not
    be able to drive the station."""
    text = env.get(name)
    if text is None:
        return tuple(dict.fromkeys(origin for origin in map(canonical_origin, default) if origin))
    origins: list[str] = []
    for item in (item.strip() for item in text.split(",")):
        origin = canonical_origin(item) if item else None
        if item and origin is None:
            raise EnvError(f"{name}: {item!r} is not an origin like http://192.168.1.10:8000 "
                           "(scheme http or https, host, optional port; nothing else)")
        if origin is not None and origin not in origins:
            origins.append(origin)
    if not origins:
        raise EnvError(f"{name} must list at least one origin, e.g. http://127.0.0.1:8000")
    return tuple(origins)


def canonical_origin(text: str) -> str | None:
    """An origin as browsers send it in the Origin header (lower case, no default port, no
    trailing slash), or None when `text` is not one (e.g. "null", a path, a wildcard)."""
    parts = urlsplit(text.strip().removesuffix("/"))
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        return None
    host = parts.hostname or ""
    if (parts.scheme not in DEFAULT_PORTS or not HOST_NAME.fullmatch(host) or port == 0
            or parts.username is not None or parts.path or parts.query or parts.fragment):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"

"""Static configuration from the environment (contract in ARCHITECTURE.md).

Each variable has a working default for simulation on one machine; a bad value stops
start-up with a message naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


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

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> StationEnv:
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

"""Run chargepoint as a real subprocess: the end-to-end station fixture and its helpers.

`start_station(csms_url=...)` (fixture) starts `python manage.py chargepoint --sim` with a
station.toml of its own (free Modbus TCP port, serial links under the test's tmp_path), a free
WEB_PORT and the CSMS the test gives; REDIS_URL, BUS_PREFIX, STATION_DATA_DIR and DATABASE_URL
are the test session's, so the test reads the same bus and database as the station. It
returns once every service beats, and on teardown checks that SIGTERM stops the station with
exit code 0 within the grace (then kills whatever is left anyway).

`launch_via_start_sh(...)` runs the station as in the field instead: ops/start.sh runs
chargepoint (installs updates, restarts it); its `StartShStation.power_cut()` kills every
process of it at once and `relaunch()` starts start.sh again on the same data.

Registered for every test in tests/conftest.py (pytest_plugins).
Reading the station's database: the children use the session's real database (not
pytest-django's test database), so read it with `django_db_blocker.unblock()` in a test that
does not request the `db` fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from bus import contract
from bus.contract import KeySpec
from bus.enums import ChildStatus
from bus.messages import ChildState, Heartbeat
from bus.names import Names
from tests.support.waiting import wait_until
from webapp.env import REPO_ROOT, StationEnv
from workers.chargepoint.services import select
from workers.common.redis_server import free_port

T = TypeVar("T")
STOP_TIMEOUT_S = 20.0  # chargepoint's own child grace (10 s) plus its SIGKILL wait and margin
START_TIMEOUT_S = 60.0  # first start migrates the database and starts the web server
SIM_TOML = REPO_ROOT / "ops" / "station.sim.toml"


class BusReader:
    """Synchronous, typed reads of bus keys for test assertions (names from bus.contract)."""

    def __init__(self, redis_url: str | None = None) -> None:
        self.redis = redis.Redis.from_url(redis_url or os.environ["REDIS_URL"], decode_responses=True)
        self.names = Names.from_env()

    def get(self, spec: KeySpec[T], **params: Any) -> T | None:
        raw = self.redis.get(self.names.key(spec.format(**params)))
        return None if raw is None else spec.model.model_validate_json(raw)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.redis.close()


class ChargepointProcess:
    """A running `chargepoint` (own process group, output in a log file) and its children."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.bus = BusReader(env["REDIS_URL"])
        self._seen: set[tuple[int, str]] = set()
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(self.argv, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                            stdout=log_file, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def children(self) -> dict[str, ChildState]:
        """chargepoint's published view of its children (empty before the first publish)."""
        state = self.bus.get(contract.SUPERVISOR)
        if state is None or not self.is_supervisor(state.pid):
            return {}
        children = {child.name: child for child in state.children}
        self._seen.update((child.pid, child.module) for child in state.children if child.pid is not None)
        return children

    def is_supervisor(self, pid: int) -> bool:
        """The published supervisor state is this process's (not a stopped earlier one's)."""
        return pid == self.pid

    def pids(self) -> dict[str, int | None]:
        return {name: child.pid for name, child in self.children().items()}

    def heartbeat(self, name: str) -> Heartbeat | None:
        return self.bus.get(contract.HEARTBEAT, service=name)

    def running_pid(self, name: str) -> int | None:
        """The child's pid if chargepoint sees it running and its heartbeat carries that pid."""
        child = self.children().get(name)
        if child is None or child.status is not ChildStatus.RUNNING or child.pid is None:
            return None
        beat = self.heartbeat(name)
        return child.pid if beat is not None and beat.pid == child.pid else None

    def wait_running(self, names: Sequence[str], *, timeout_s: float = START_TIMEOUT_S) -> dict[str, int]:
        """Wait until every named child runs and beats; returns their pids."""
        def probe() -> dict[str, int] | None:
            self.assert_alive()
            pids = {name: self.running_pid(name) for name in names}
            return pids if all(pids.values()) else None  # type: ignore[return-value]

        try:
            return wait_until(probe, timeout_s=timeout_s, what=f"{', '.join(names)} running and beating")
        except AssertionError as error:
            states = {name: (c.status.value, c.restarts, c.last_exit_code)
                      for name, c in self.children().items()}
            raise AssertionError(f"{error}\nchildren (status, restarts, last exit): {states}\n"
                                 f"--- chargepoint output (tail) ---\n{self.output()[-6000:]}") from None

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"chargepoint exited with {self.process.returncode}:\n{self.output()}")

    def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as error:
            raise AssertionError(
                f"chargepoint still running after {timeout_s} s:\n{self.output()}") from error

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code. Kills everything left in any case."""
        try:
            if self.process.poll() is None:
                self.send(signal.SIGTERM)
            return self.wait_exit(timeout_s)
        finally:
            self.kill_leftovers()

    def kill_leftovers(self) -> None:
        """SIGKILL chargepoint's group and any child it ever reported that still runs its
        module (checked by command line, so a reused pid is never hit)."""
        groups = [pid for pid, module in self._seen if _runs_module(pid, module)]
        if self.process.poll() is None:
            groups.append(self.pid)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=5)
        self.bus.close()


class Station(ChargepointProcess):
    """The whole station under test (`chargepoint --sim`) with its CLI helpers."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log_path: Path,
                 config_path: Path, services: Sequence[str]) -> None:
        super().__init__(argv, env, log_path)
        self.config_path = config_path
        self.services = list(services)
        self.web_port = int(env["WEB_PORT"])
        self.database_url = env["DATABASE_URL"]

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def manage(self, *args: str, check: bool = True,
               timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        """Run `python manage.py ARGS` with the station's environment."""
        done = subprocess.run([sys.executable, "manage.py", *args], env=self.env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def sim(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Drive the simulator: `station.sim("plug", "1")`."""
        return self.manage("sim", *args, check=check)

    def status(self) -> dict[str, Any]:
        """`manage.py status --json`, parsed."""
        return json.loads(self.manage("status", "--json").stdout)


def hold(seconds: float) -> None:
    """Keep a condition the test created (e.g. a Redis outage) for a given time. A stimulus
    with a duration, not a wait for an event: use wait_until for those."""
    time.sleep(seconds)


def pid_alive(pid: int) -> bool:
    """The process exists (a zombie counts until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _runs_module(pid: int, module: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return module.encode() in argv and b"-m" in argv


def write_station_toml(folder: Path, source: Path = SIM_TOML) -> tuple[Path, dict[int, int]]:
    """Copy station.toml with fresh free ports for its Modbus TCP buses and the serial links
    under `folder`; returns the file and {old port: new port}."""
    text = source.read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    old_ports = {bus["port"] for bus in raw.get("buses", {}).values() if bus.get("kind") == "modbus_tcp"}
    ports = {old: free_port() for old in old_ports}
    for old, new in ports.items():
        line = f"port = {old}\n"
        if line not in text:
            raise AssertionError(f"{source}: cannot find '{line.strip()}' to give it a free port")
        text = text.replace(line, f"port = {new}\n")
    run_dir = folder / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    text = text.replace("{run_dir}", str(run_dir))
    path = folder / "station.toml"
    path.write_text(text, encoding="utf-8")
    return path, ports


def chargepoint_env(config_path: Path, **overrides: str) -> dict[str, str]:
    """The session's environment (Redis, bus prefix, data folder, database) plus a station's own."""
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", StationEnv.from_environ().database_url)
    env.update({"STATION_CONFIG": str(config_path), "WEB_PORT": str(free_port()),
                "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


def launch_station(folder: Path, csms_url: str, *, charge_point_id: str = "TEST-0001",
                   only: Sequence[str] | None = None, timeout_s: float = START_TIMEOUT_S) -> Station:
    """Start `chargepoint --sim` (optionally `--only`) and wait until every service beats."""
    config_path, _ = write_station_toml(folder)
    env = chargepoint_env(config_path, OCPP_CSMS_URL=csms_url, OCPP_CHARGE_POINT_ID=charge_point_id)
    services = [spec.name for spec in select(sim=True, only=only)]
    argv = [sys.executable, "manage.py", "chargepoint", "--sim"]
    if only is not None:
        argv += ["--only", ",".join(only)]
    station = Station(argv, env, folder / "chargepoint.log", config_path, services)
    try:
        station.wait_running(services, timeout_s=timeout_s)
    except BaseException:
        station.stop()
        raise
    return station


@pytest.fixture
def start_station(tmp_path: Path, redis_client: redis.Redis) -> Iterator[Callable[..., Station]]:
    """Factory fixture: `station = start_station(csms_url)`; stopped (and checked) on teardown."""
    started: list[Station] = []

    def start(csms_url: str, **kwargs: Any) -> Station:
        folder = tmp_path / f"station{len(started)}"
        folder.mkdir()
        station = launch_station(folder, csms_url, **kwargs)
        started.append(station)
        return station

    yield start
    for station in started:
        code = station.stop()
        assert code == 0, f"chargepoint exited {code} on SIGTERM:\n{station.output()[-5000:]}"


START_SH = REPO_ROOT / "ops" / "start.sh"


class StartShStation(Station):
    """The station as it runs in the field: ops/start.sh (leading its own process group) runs
    `chargepoint --sim`, installs the staged debs on an update exit code and starts it again, so
    chargepoint's pid changes with every start: the supervisor is whichever runs in the group."""

    def is_supervisor(self, pid: int) -> bool:
        try:
            return os.getpgid(pid) == self.pid
        except ProcessLookupError:
            return False

    def power_cut(self) -> None:
        """Every process of the station dies at once (SIGKILL, no clean-up): start.sh and all
        its descendants (chargepoint, dpkg and its scripts, the services, whatever they started
        in process groups of their own, e.g. RQ's job process), each frozen first, so nothing
        reacts to the others dying."""
        tree = [self.pid, *_descendants(self.pid)]
        for signum in (signal.SIGSTOP, signal.SIGKILL):
            for pid in tree:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)
        self.process.wait(timeout=10)
        self.kill_leftovers()

    def relaunch(self, *, wait: bool = True, timeout_s: float = START_TIMEOUT_S) -> StartShStation:
        """start.sh again on the same data, database and config (after a power cut); `wait`:
        until every service beats."""
        number = int(self.log_path.stem.rpartition("-")[2]) + 1
        station = StartShStation(self.argv, self.env, self.log_path.with_name(f"start-{number}.log"),
                                 self.config_path, self.services)
        return _running(station, timeout_s) if wait else station


def _descendants(root: int) -> list[int]:
    """Every process below `root` now (from /proc), whatever its process group."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


PROBATION_S = "5"  # start.sh watches a new version this long before the FOTA job reports Installed


def launch_via_start_sh(folder: Path, csms_url: str, *, charge_point_id: str = "TEST-0001",
                        timeout_s: float = START_TIMEOUT_S, **env: str) -> StartShStation:
    """Start `ops/start.sh --sim` (CHARGEPOINT_CMD: this venv's `manage.py chargepoint`) with
    `env` added (e.g. STATION_DATA_DIR, DPKG, PATH) and wait until every service beats."""
    config_path, _ = write_station_toml(folder)
    environment = chargepoint_env(config_path, OCPP_CSMS_URL=csms_url, OCPP_CHARGE_POINT_ID=charge_point_id,
                                  CHARGEPOINT_CMD=f"{sys.executable} manage.py chargepoint",
                                  START_CRASH_DELAY_S="0", **{"START_PROBATION_S": PROBATION_S, **env})
    services = [spec.name for spec in select(sim=True)]
    station = StartShStation([str(START_SH), "--sim"], environment, folder / "start-1.log", config_path,
                             services)
    return _running(station, timeout_s)


def _running(station: StartShStation, timeout_s: float) -> StartShStation:
    try:
        station.wait_running(station.services, timeout_s=timeout_s)
    except BaseException:
        station.stop()
        raise
    return station

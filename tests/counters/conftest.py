from tests.sim.processes import sim_station, station_files  # noqa: F401  (fixtures)

from tests.sim.processes import sim_station, station_files  # noqa: F401  (fixtures)
from tests.support.database import migrated_template, service_db  # noqa: F401  (fixtures)

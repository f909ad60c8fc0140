"""chargepoint: the supervisor that starts every station service and keeps it running.

`python manage.py chargepoint [--sim] [--only NAMES]` is the entry point; ops/start.sh runs
it forever and reads its exit code (workers.chargepoint.exit_codes).
"""

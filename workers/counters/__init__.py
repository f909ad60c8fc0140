"""The `counters` service: polls every energy meter and publishes its readings."""

"""Helpers every service shares: start-up (bootstrap), logging, station.toml."""

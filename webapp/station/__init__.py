"""The station's Django app: the one schema (models) every service writes through the ORM."""

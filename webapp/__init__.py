"""The station's Django project: schema, configurator, HMI and REST API."""

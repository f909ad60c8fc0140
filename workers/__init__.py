"""Station services: one package per service, each started by chargepoint as its own process."""

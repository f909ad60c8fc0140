"""ocpp16: the station's OCPP 1.6-J charge point (see workers/ocpp16/service.py)."""

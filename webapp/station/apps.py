from django.apps import AppConfig


class StationConfig(AppConfig):
    name = "webapp.station"
    label = "station"
    verbose_name = "Station"

from django.urls import path

from webapp.station.consumers import HmiConsumer

websocket_urlpatterns = [path("ws/hmi/", HmiConsumer.as_asgi())]

"""HMI websocket (placeholder until the web helper fills it in)."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class HmiConsumer(AsyncJsonWebsocketConsumer):
    pass

"""The NinjaAPI instance; the routers are added in this module."""

from ninja import NinjaAPI

api = NinjaAPI(title="Station controller API", version="1", urls_namespace="api")

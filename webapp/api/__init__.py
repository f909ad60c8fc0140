"""The REST API (django-ninja) at /api/, OpenAPI docs at /api/docs."""

from webapp.api.site import api

__all__ = ["api"]

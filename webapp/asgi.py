"""ASGI entry point: HTTP through Django (static files by whitenoise), websockets through channels."""

import os
import warnings
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from django.conf import settings
from django.core.asgi import get_asgi_application


def prepare_static() -> None:
    """Static files come from the finders (hmi_static/, the admin's), with no collectstatic
    step. STATIC_ROOT must still exist or whitenoise warns on every start. Whitenoise serves a
    file through a sync iterator, which Django's ASGI handler reads in a worker thread and warns
    about for every file: expected here, so that one warning is silenced."""
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")


prepare_static()
django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from webapp.station.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_app,
    "websocket": URLRouter(websocket_urlpatterns),
})

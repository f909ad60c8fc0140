"""ASGI entry point: HTTP through Django (static files by whitenoise), websockets through channels."""

import os
import warnings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from django.core.asgi import get_asgi_application

# Static files come from the finders (hmi_static/, the admin's) through whitenoise, with no
# collectstatic step. Whitenoise serves a file through a sync iterator, which Django's ASGI
# handler reads in a worker thread and warns about for every file: expected, so silenced.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from webapp.station.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_app,
    "websocket": URLRouter(websocket_urlpatterns),
})

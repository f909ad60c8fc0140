"""Start-up shared by every service process: Django (for the ORM) and logging."""

from __future__ import annotations

import os


def setup(service: str, *, log_to_files: bool = True) -> None:
    """Call first thing in a service's `__main__`: settings, ORM and logging are ready after."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django
    from django.conf import settings

    django.setup()
    from workers.common.logs import setup_logging

    env = settings.STATION_ENV
    setup_logging(service, env.logs_dir if log_to_files else None)

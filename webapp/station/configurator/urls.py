"""URLs of the configurator's pages."""

urlpatterns: list = []

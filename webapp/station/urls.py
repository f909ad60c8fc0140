from django.urls import path

from webapp.station import views

urlpatterns = [
    path("hmi/", views.hmi, name="hmi"),
]

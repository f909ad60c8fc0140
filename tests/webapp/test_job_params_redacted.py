"""The Jobs pages of the admin never show the password of a job's location: FIRMWARE_UPDATE and
DIAGNOSTICS_UPLOAD keep the CSMS's URL, credentials included, in their params."""

from __future__ import annotations

import pytest
from django.test import Client

from webapp.station.models import JobRecord

pytestmark = pytest.mark.django_db

LIST = "/admin/station/jobrecord/"


def job(kind: str, location: object) -> JobRecord:
    return JobRecord.objects.create(kind=kind, status=JobRecord.Status.RUNNING,
                                    params={"location": location, "attempts": 3})


@pytest.mark.parametrize("kind", ["firmware_update", "diagnostics_upload"])
def test_the_list_and_the_page_show_the_location_without_its_password(operator: Client, kind: str) -> None:
    record = job(kind, "ftp://user:secret@files.example.org/fw/station.upd")

    listing = operator.get(LIST).content.decode()
    page = operator.get(f"{LIST}{record.pk}/change/").content.decode()

    assert f"{LIST}{record.pk}/change/" in listing
    assert "secret" not in listing and "secret" not in page
    assert "ftp://user@files.example.org/fw/station.upd" in page
    assert "&quot;attempts&quot;: 3" in page


@pytest.mark.parametrize("location", ["sftp://user:secret@host/fw", "ftp://user:secret@host:99999/fw",
                                      {"url": "ftp://user:secret@host/fw"}])
def test_a_location_that_is_not_a_usable_url_is_hidden_whole(operator: Client, location: object) -> None:
    record = job("firmware_update", location)

    page = operator.get(f"{LIST}{record.pk}/change/").content.decode()

    assert page.count("(not a usable location)") == 1
    assert "secret" not in page


def test_other_params_are_shown_as_they_are(operator: Client) -> None:
    record = JobRecord.objects.create(kind="hmi_screenshot", params={"width": 1280, "height": 800})

    page = operator.get(f"{LIST}{record.pk}/change/").content.decode()

    assert "&quot;width&quot;: 1280" in page and "&quot;height&quot;: 800" in page

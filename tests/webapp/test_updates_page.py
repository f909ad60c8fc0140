"""The configurator's Updates page (/configurator/updates/) through the Django test client, on the
real bus: a tiny server stands in for ocpp16's OCPP_UPDATE_FIRMWARE (the real ocpp16 path:
tests/ocpp16/test_update_command.py). An operator requests an update from a URL or flashes the
controllers again from an installed bundle (a job row); a viewer sees everything and can do
nothing; bad input is a form error with nothing sent and nothing audited; every request the
station was asked is in the audit log, without the location's password."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from bus import contract
from bus.messages import DeviceState, UpdateFirmwareReply, UpdateFirmwareRequest
from tests.webapp.test_configurator_pages import (
    BusThread,
    bus_call,
    post_forms,
    shown_messages,
    submit_buttons,
)
from webapp.station.models import FirmwareUpdate, JobRecord
from webapp.station.operator_models import AuditEntry
from workers.jobs.base import JobKind

pytestmark = pytest.mark.django_db

PAGE = "/configurator/updates/"
FROM_URL = "/configurator/updates/from-url/"
FLASH = "/configurator/updates/flash/"
PASSWORD = "s3cret-pw"
GOOD = {"location": f"https://fw:{PASSWORD}@updates.example/station-2.1.0.pkg", "attempts": "2",
        "retry_interval_s": "30"}
REFUSED_HOST = "refused.example"  # the fake ocpp16 refuses locations on this host


@dataclass
class FakeOcpp16:
    asked: list[UpdateFirmwareRequest] = field(default_factory=list)

    async def update_firmware(self, request: UpdateFirmwareRequest) -> UpdateFirmwareReply:
        self.asked.append(request)
        if REFUSED_HOST in request.location:
            return UpdateFirmwareReply(accepted=False, detail="this station takes signed firmware only")
        return UpdateFirmwareReply(accepted=True, detail="download starts now")


@pytest.fixture
def ocpp16(redis_client) -> Iterator[FakeOcpp16]:
    fake = FakeOcpp16()
    with BusThread([(contract.OCPP_UPDATE_FIRMWARE, fake.update_firmware)]):
        yield fake


@pytest.fixture
def station_dirs(settings, tmp_path: Path) -> Path:
    """STATION_DATA_DIR and STATION_FIRMWARE_DIR of the test's own (one bundle 3.1.0 installed)."""
    settings.STATION_ENV = replace(settings.STATION_ENV, data_dir=tmp_path / "data",
                                   firmware_dir=tmp_path / "firmware")
    bundle = tmp_path / "firmware" / "3.1.0"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text("{}")
    (tmp_path / "firmware" / "not-a-bundle").mkdir()  # no manifest: not offered
    return tmp_path


def page(response) -> str:
    return response.content.decode()


# ---- who may do what -------------------------------------------------------------------------


def test_the_page_is_in_the_configurators_menu(viewer: Client, redis_client) -> None:
    assert f'href="{PAGE}"' in page(viewer.get("/configurator/"))


def test_a_viewer_sees_the_page_without_any_form_to_submit(viewer: Client, redis_client,
                                                            station_dirs) -> None:
    response = viewer.get(PAGE)

    assert response.status_code == 200
    assert post_forms(page(response)) == [] and submit_buttons(page(response)) == []


@pytest.mark.parametrize(("url", "data"), [(FROM_URL, GOOD), (FLASH, {"bundle": "3.1.0", "confirm": "on"})])
def test_a_viewer_gets_403_and_nothing_is_sent_or_queued(url: str, data: dict[str, str], viewer: Client,
                                                          ocpp16: FakeOcpp16, station_dirs) -> None:
    assert viewer.post(url, data).status_code == 403
    assert ocpp16.asked == [] and not JobRecord.objects.exists() and not AuditEntry.objects.exists()


def test_anonymous_visitors_are_sent_to_the_login(ocpp16: FakeOcpp16) -> None:
    for url in (PAGE, FROM_URL, FLASH):
        response = Client().post(url, GOOD) if url != PAGE else Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert ocpp16.asked == []


# ---- update from URL -------------------------------------------------------------------------


def test_an_operators_update_reaches_ocpp16_and_is_audited_without_the_password(
        operator: Client, ocpp16: FakeOcpp16, station_dirs) -> None:
    response = operator.post(FROM_URL, GOOD, follow=True)

    assert shown_messages(response) == ["Update from URL: Accepted (download starts now)"]
    [asked] = ocpp16.asked
    assert (asked.location, asked.attempts, asked.retry_interval_s) == (GOOD["location"], 2, 30)
    assert abs((asked.retrieve_at - timezone.now()).total_seconds()) < 30  # now
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.outcome) == ("firmware_update", "Accepted: download starts now")
    assert entry.target == "https://fw@updates.example/station-2.1.0.pkg"
    assert PASSWORD not in json.dumps([entry.target, entry.after, entry.outcome])


def test_a_refusal_by_ocpp16_is_shown_and_audited(operator: Client, ocpp16: FakeOcpp16, station_dirs) -> None:
    response = operator.post(FROM_URL, {**GOOD, "location": f"https://{REFUSED_HOST}/fw.pkg"}, follow=True)

    assert shown_messages(response) == ["Update from URL: Rejected (this station takes signed firmware only)"]
    assert AuditEntry.objects.get().outcome.startswith("Rejected")


@pytest.mark.parametrize(("data", "field_name", "says"), [
    ({"location": "updates.example/fw.pkg"}, "location", "not supported"),
    ({"location": "gopher://updates.example/fw.pkg"}, "location", "protocol 'gopher'"),
    ({"location": "https:///fw.pkg"}, "location", "host"),
    ({"location": "https://updates.example:99999/fw.pkg"}, "location", "URL"),
    ({"location": ""}, "location", "required"),
    ({"location": "https://x.example/" + "a" * 600}, "location", "at most 512"),
    ({"attempts": "0"}, "attempts", "greater than or equal to 1"),
    ({"attempts": "11"}, "attempts", "less than or equal to 10"),
    ({"attempts": "two"}, "attempts", "whole number"),
    ({"retry_interval_s": "-1"}, "retry_interval_s", "greater than or equal to 0"),
    ({"retry_interval_s": "3601"}, "retry_interval_s", "less than or equal to 3600"),
])
def test_bad_input_is_a_form_error_and_nothing_is_sent(data: dict[str, str], field_name: str, says: str,
                                                        operator: Client, ocpp16: FakeOcpp16,
                                                        station_dirs) -> None:
    response = operator.post(FROM_URL, {**GOOD, **data})

    assert response.status_code == 200
    errors = response.context["url_form"].errors
    assert list(errors) == [field_name] and says in " ".join(errors[field_name])
    assert 'class="errorlist' in page(response)
    assert ocpp16.asked == [] and not AuditEntry.objects.exists()


def test_ocpp16_not_answering_is_said_and_audited(operator: Client, redis_client, station_dirs,
                                                  monkeypatch) -> None:
    from webapp.station import actions
    monkeypatch.setattr(actions, "REPLY_TIMEOUT_S", 0.3)

    response = operator.post(FROM_URL, GOOD, follow=True)

    [message] = shown_messages(response)
    assert message.startswith("Update from URL: NotAnswered")
    assert AuditEntry.objects.get().outcome.startswith("NotAnswered")


# ---- flash controllers again -----------------------------------------------------------------


def test_an_operator_flashes_the_controllers_again_as_a_job(operator: Client, station_dirs: Path) -> None:
    response = operator.post(FLASH, {"bundle": "3.1.0", "confirm": "on"}, follow=True)

    [job] = JobRecord.objects.all()
    assert job.kind == JobKind.UPDATE_CONTROLLERS
    assert job.params == {"bundle_dir": str(station_dirs / "firmware" / "3.1.0"), "attempts": 3}
    assert shown_messages(response) == [f"Flash controllers: Queued (job #{job.pk})"]
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.outcome) == ("flash_controllers", "bundle 3.1.0",
                                                          f"Queued: job #{job.pk}")

    again = operator.post(FLASH, {"bundle": "3.1.0", "confirm": "on"}, follow=True)
    assert shown_messages(again) == [f"Flash controllers: Busy (job #{job.pk} is flashing the controllers "
                                     "already)"]
    assert JobRecord.objects.count() == 1


@pytest.mark.parametrize(("data", "field_name"), [
    ({"bundle": "not-a-bundle", "confirm": "on"}, "bundle"),  # a folder without a manifest
    ({"bundle": "../../etc", "confirm": "on"}, "bundle"),
    ({"bundle": "3.1.0"}, "confirm"),
])
def test_a_bad_flash_request_queues_nothing(data: dict[str, str], field_name: str, operator: Client,
                                            station_dirs) -> None:
    response = operator.post(FLASH, data)

    assert response.status_code == 200 and list(response.context["flash_form"].errors) == [field_name]
    assert not JobRecord.objects.exists() and not AuditEntry.objects.exists()


# ---- what the page shows ---------------------------------------------------------------------


def test_the_page_lists_updates_versions_install_files_and_controllers(viewer: Client, redis_client,
                                                                      station_dirs: Path) -> None:
    job = JobRecord.objects.create(kind=JobKind.FIRMWARE_UPDATE, status=JobRecord.Status.FAILED)
    FirmwareUpdate.objects.create(job=job, location=f"ftp://fw:{PASSWORD}@ftp.example/fw/2.0.pkg",
                                  kind="software", version="2.0.0", stage=FirmwareUpdate.Stage.FAILED,
                                  bytes_done=4096, bytes_total=8192, failure="InvalidSignature",
                                  failure_reason="bad_signature", error="the signature does not match")
    FirmwareUpdate.objects.create(location="https://updates.example/1.9.pkg", kind="software",
                                  version="1.9.0", stage=FirmwareUpdate.Stage.INSTALLED)
    status = station_dirs / "data" / "packages" / "status"
    status.mkdir(parents=True)
    (status / "software.json").write_text(json.dumps({
        "kind": "software", "stage": "install", "result": "ok", "time": "2026-01-02T03:04:05+00:00",
        "message": "installed", "packages": ["station-software_1.9.0_all.deb"]}))
    (status / "web-configurator.json").write_text("{not json")
    controller = DeviceState(device="controller:1", available=True, firmware_version="3.0.2")
    bus_call(lambda bus: bus.set(contract.DEVICE, controller, device="controller:1"))

    response = viewer.get(PAGE)
    html = page(response)

    assert "ftp://fw@ftp.example/fw/2.0.pkg" in html and PASSWORD not in html
    assert "InvalidSignature (bad_signature): the signature does not match" in html
    assert "4096 / 8192" in html and f'href="/admin/station/jobrecord/{job.pk}/change/"' in html
    assert '<td>software</td><td data-column="version">1.9.0</td>' in html
    assert "station-software_1.9.0_all.deb" in html
    assert "web-configurator.json" in html and "cannot be read" in html
    assert '<td data-column="firmware">3.0.2</td>' in html
    assert '<option value="3.1.0">' in html and "not-a-bundle" not in html
    assert all(field.disabled for field in response.context["flash_form"].fields.values())


def test_the_admin_lists_firmware_updates_read_only_and_without_the_location(viewer: Client) -> None:
    update = FirmwareUpdate.objects.create(location=f"https://fw:{PASSWORD}@updates.example/fw.pkg",
                                           kind="software", version="2.0.0")

    listed = viewer.get("/admin/station/firmwareupdate/")
    shown = viewer.get(f"/admin/station/firmwareupdate/{update.pk}/change/")

    assert listed.status_code == 200 and "2.0.0" in page(listed)
    assert shown.status_code == 200 and PASSWORD not in page(shown) and "updates.example" not in page(shown)
    assert viewer.get("/admin/station/firmwareupdate/add/").status_code == 403


def test_installed_bundles_are_offered_newest_version_first_then_other_names(viewer: Client, redis_client,
                                                                            station_dirs: Path) -> None:
    for name in ("9.0.0", "10.0.0", "10.1", "2.0.0-rc1", "0.9"):
        (station_dirs / "firmware" / name).mkdir()
        (station_dirs / "firmware" / name / "manifest.json").write_text("{}")

    html = page(viewer.get(PAGE))

    expected = ["10.1", "10.0.0", "9.0.0", "3.1.0", "0.9", "2.0.0-rc1"]
    assert all(f'<option value="{name}">' in html for name in expected)
    positions = [html.index(f'<option value="{name}">') for name in expected]
    assert positions == sorted(positions)

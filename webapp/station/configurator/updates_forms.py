"""The Updates page's forms: "Update from URL" and "Flash controllers again". They check the
shape of what was typed (a URL the download can use, counts in the ranges OCPP's UpdateFirmware
allows here, an installed bundle); ocpp16 and the jobs decide the rest."""

from __future__ import annotations

from typing import Any

from django import forms

from workers.jobs.upload import UploadError, parse_location

LOCATION_MAX = 512  # FirmwareUpdate.location
MAX_ATTEMPTS = 10  # workers/ocpp16/transfer_jobs.py MAX_ATTEMPTS
MAX_RETRY_INTERVAL_S = 3600  # workers/ocpp16/transfer_jobs.py MAX_RETRY_INTERVAL_S


class UpdateFromUrlForm(forms.Form):
    location = forms.CharField(
        label="Package URL", max_length=LOCATION_MAX,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="http(s):// or ftp(s):// URL of a signed update package; a user and password in the "
                  "URL are used for the download and never shown or logged.")
    attempts = forms.IntegerField(label="Attempts", min_value=1, max_value=MAX_ATTEMPTS, initial=3,
                                  help_text="Downloads tried before the update is given up (DownloadFailed).")
    retry_interval_s = forms.IntegerField(label="Retry interval, s", min_value=0,
                                          max_value=MAX_RETRY_INTERVAL_S, initial=60,
                                          help_text="Wait between two download attempts.")

    def clean_location(self) -> str:
        location = str(self.cleaned_data["location"]).strip()
        try:
            parse_location(location)
        except UploadError as error:
            raise forms.ValidationError(str(error)) from None
        return location


class FlashForm(forms.Form):
    bundle = forms.ChoiceField(label="Installed firmware bundle", choices=(),
                               help_text="Every controller not already at the bundle's version is flashed, "
                                         "one at a time; its connector is Unavailable meanwhile.")
    confirm = forms.BooleanField(label="Yes, flash the controllers",
                                 error_messages={"required": "Tick the box to confirm."})

    def __init__(self, *args: Any, bundles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["bundle"].choices = [(version, version) for version in bundles]  # type: ignore[attr-defined]

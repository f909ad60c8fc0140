"""Over-the-air update state that must survive a power cut (issue 7, design decision 2).

The FIRMWARE_UPDATE job is idempotent: each run reads its FirmwareUpdate row and continues
from the persisted stage, so a station that loses power while downloading, verifying, waiting
for idle or installing carries on where it stopped. Writer: the jobs service only.
"""

from __future__ import annotations

from django.db import models

from bus.enums import UpdateKind


class FirmwareUpdate(models.Model):
    """One OCPP UpdateFirmware / SignedUpdateFirmware as the job works through it. Writer: jobs."""

    class Stage(models.TextChoices):
        SCHEDULED = "scheduled"
        DOWNLOADING = "downloading"
        DOWNLOADED = "downloaded"
        VERIFIED = "verified"  # signature, signer and version checked; the deb(s) staged
        WAITING_IDLE = "waiting_idle"  # asking smartw for the update hold
        INSTALLING = "installing"  # EXIT_FOR_UPDATE sent; ops/start.sh installs
        FLASHING = "flashing"  # controller-firmware installed; update_controllers flashes
        INSTALLED = "installed"
        FAILED = "failed"

    KINDS = [(kind.value, kind.value) for kind in UpdateKind]

    job = models.OneToOneField("station.JobRecord", on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="firmware_update")
    location = models.CharField(max_length=512, help_text="may carry a password: never logged")
    signed = models.BooleanField(default=False, help_text="SignedUpdateFirmware (else UpdateFirmware)")
    request_id = models.IntegerField(null=True, blank=True, help_text="SignedUpdateFirmware's requestId")
    kind = models.CharField(max_length=32, choices=KINDS, blank=True, help_text="from the package header")
    version = models.CharField(max_length=64, blank=True, help_text="from the package header")
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.SCHEDULED)
    stage_changed_at = models.DateTimeField(auto_now_add=True,
                                            help_text="when `stage` was entered (a status file older "
                                                      "than the installing stage is ignored)")
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    package_file = models.CharField(max_length=500, blank=True,
                                    help_text="the downloaded package, relative to STATION_DATA_DIR")
    flash_job = models.ForeignKey("station.JobRecord", on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="+",
                                  help_text="controller-firmware: the update_controllers job")
    failure = models.CharField(max_length=40, blank=True, help_text="TransferStatus of the failure, e.g. "
                                                                     "InvalidSignature")
    failure_reason = models.CharField(max_length=40, blank=True,
                                      help_text="why: a RefusalReason, a TransferFailure or a dpkg result")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"firmware update #{self.pk} {self.kind or '?'} {self.version or '?'} ({self.stage})"

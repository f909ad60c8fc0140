"""The station's durable data. Every table has one writing service, named in its docstring.

Redis holds nothing that must survive a power loss; these tables do.
"""

from __future__ import annotations

from django.db import models


class ChargingSession(models.Model):
    """One charging session as the station saw it. Writer: smartw. Never deleted."""

    session_id = models.CharField(max_length=32, unique=True)
    connector_id = models.PositiveSmallIntegerField()
    standard = models.CharField(max_length=16)
    id_tag = models.CharField(max_length=20, blank=True)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    meter_start_wh = models.FloatField(help_text="meter register at start, Wh")
    meter_stop_wh = models.FloatField(null=True, blank=True, help_text="meter register at stop, Wh")
    energy_wh = models.FloatField(default=0, help_text="energy delivered, Wh")
    peak_power_w = models.FloatField(default=0, help_text="highest power seen, W")
    stop_reason = models.CharField(max_length=32, blank=True)
    stop_id_tag = models.CharField(max_length=20, blank=True, help_text="who stopped it; empty: the station")
    reservation_id = models.IntegerField(null=True, blank=True,
                                         help_text="the OCPP reservation this session used, if any")
    parent_id_tag = models.CharField(max_length=20, blank=True, db_default="",
                                     help_text="the idTag's parent (group) when known; a card of the "
                                               "same group may stop the session")
    start_published = models.BooleanField(default=False, help_text="session_started is on the bus")
    stop_published = models.BooleanField(default=False, help_text="session_stopped is on the bus")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"connector {self.connector_id} {self.started_at:%Y-%m-%d %H:%M} {self.id_tag}"


class SessionEvent(models.Model):
    """One entry of a charging session's timeline. Writer: smartw. Never deleted.

    smartw queues these from its control cycle and writes them in order from one background
    task (workers/smartw/timeline.py), so a slow database never delays the cycle.
    """

    class Kind(models.TextChoices):
        STARTED = "started", "session started"
        STATUS = "status", "OCPP status change"
        LIMIT = "limit", "power offered changed"
        FAULT = "fault", "fault raised or cleared"
        EV = "ev", "EV state, phase or SoC"
        STOPPED = "stopped", "session stopped"

    session = models.ForeignKey(ChargingSession, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(help_text="when smartw saw it, UTC")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    detail = models.CharField(max_length=200, blank=True, help_text="short text for people")
    data = models.JSONField(default=dict, blank=True, help_text="the values behind the detail")

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["session", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.kind} {self.detail}"


class Transaction(models.Model):
    """An OCPP transaction, one per charging session. Writer: ocpp16."""

    session_id = models.CharField(max_length=32, unique=True)
    connector_id = models.PositiveSmallIntegerField()
    id_tag = models.CharField(max_length=20)
    meter_start_wh = models.BigIntegerField()
    started_at = models.DateTimeField()
    transaction_id = models.IntegerField(null=True, blank=True,
                                         help_text="CSMS transactionId; null until StartTransaction.conf")
    meter_stop_wh = models.BigIntegerField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True)
    last_sampled_at = models.DateTimeField(
        null=True, blank=True,
        help_text="boundary of the last periodic MeterValues queued; a restarted ocpp16 goes on from it")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"tx {self.transaction_id} on connector {self.connector_id}"


class OutboxMessage(models.Model):
    """A CALL waiting to reach the CSMS, delivered in `id` order. Writer: ocpp16.

    Transaction messages (StartTransaction, MeterValues of a transaction, StopTransaction)
    stay here until the CSMS answers, so a CSMS outage or a reboot loses nothing.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    class Lane(models.TextChoices):
        TRANSACTION = "transaction", "transaction messages, strictly in order"
        OTHER = "other", "other messages that must not be lost (security events, notifications)"

    action = models.CharField(max_length=40)
    lane = models.CharField(max_length=16, choices=Lane.choices, default=Lane.TRANSACTION)
    payload = models.JSONField()
    session_id = models.CharField(max_length=32, blank=True,
                                  help_text="the session whose transactionId is filled in on sending")
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    response = models.JSONField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["state", "id"]), models.Index(fields=["lane", "state", "id"])]

    def __str__(self) -> str:
        return f"{self.action} #{self.pk} ({self.state})"


class JobRecord(models.Model):
    """A background job with its log and result. Writer: the code that enqueues it (the row
    is created first), then the jobs worker while it runs."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"
        ERRORED = "errored"

    kind = models.CharField(max_length=40)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log = models.TextField(blank=True)
    result_file = models.CharField(max_length=500, blank=True,
                                   help_text="path of the produced file, relative to STATION_DATA_DIR")
    rq_job_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class RuntimeSettings(models.Model):
    """What an operator or the CSMS sets at run time and the station keeps across restarts and
    power cuts: availability (OCPP ChangeAvailability) and free mode. One row (pk 1).
    Writer: smartw (workers/smartw/availability.py), which reads it before its first status and
    applies every change it is asked for on the bus (`manage.py station`, ocpp16); others read
    the settings from the bus (StationState, ConnectorState.operative)."""

    ONE = 1  # the primary key of the only row
    DEFAULT_FREE_MODE_ID_TAG = "FREEMODE"

    id = models.PositiveSmallIntegerField(primary_key=True, default=ONE, editable=False)
    station_operative = models.BooleanField(default=True, help_text="OCPP connector 0 Operative")
    inoperative_connectors = models.JSONField(
        default=list, blank=True, help_text="ids of the connectors set Inoperative on their own")
    free_mode = models.BooleanField(default=False, help_text="a plugged EV starts without a card")
    free_mode_id_tag = models.CharField(max_length=20, default=DEFAULT_FREE_MODE_ID_TAG,
                                        help_text="the idTag free sessions start with")

    class Meta:
        verbose_name = verbose_name_plural = "runtime settings"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="runtime_settings_one_row")]

    def __str__(self) -> str:
        return "runtime settings"


from webapp.station.fota_models import FirmwareUpdate  # noqa: E402,F401  (Django finds models here)
from webapp.station.ocpp_models import (  # noqa: E402,F401  (Django finds models in this module)
    AuthCacheEntry,
    ChargingProfileRecord,
    InstalledCertificate,
    LocalAuthEntry,
    OcppFrame,
    OcppSetting,
    OcppState,
    Reservation,
    SecurityEvent,
)
from webapp.station.operator_models import (  # noqa: E402,F401  (Django finds models in this module)
    ApiToken,
    AuditEntry,
    StationSetting,
)

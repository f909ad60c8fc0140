"""Tables of the OCPP 1.6 charge point (writer of every one: ocpp16).

What the CSMS configures (configuration keys, charging profiles, the local authorization
list, reservations, certificates) must survive a reboot or a power cut (OCPP 1.6 errata 3.37,
§3.5.2, Security Whitepaper §4); so must the authorization cache, the security log and the
log of every frame exchanged, which the configurator shows.
"""

from __future__ import annotations

from django.db import models


class OcppSetting(models.Model):
    """A configuration key the CSMS (ChangeConfiguration) or the operator changed; a key
    without a row has its declared default (workers/ocpp16/config_keys.py)."""

    key = models.CharField(max_length=50, primary_key=True)
    value = models.TextField(max_length=500, help_text="the value as OCPP carries it (a string)")
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OCPP configuration key"

    def __str__(self) -> str:
        return self.key


class OcppState(models.Model):
    """Named pieces of ocpp16's own state that must survive a restart (e.g. the local list
    version, the last firmware status, a reset in progress); `value` is JSON."""

    name = models.CharField(max_length=50, primary_key=True)
    value = models.JSONField()
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class ChargingProfileRecord(models.Model):
    """An installed charging profile (SetChargingProfile or RemoteStartTransaction), exactly as
    received (wire JSON), so the composite schedule is rebuilt after a reboot."""

    charging_profile_id = models.IntegerField(unique=True)
    connector_id = models.PositiveSmallIntegerField(help_text="0: the whole charge point")
    purpose = models.CharField(max_length=32,
                               help_text="ChargePointMaxProfile / TxDefaultProfile / TxProfile")
    stack_level = models.PositiveIntegerField()
    transaction_id = models.IntegerField(null=True, blank=True, help_text="TxProfile: its transaction")
    profile = models.JSONField(help_text="csChargingProfiles as received (camelCase)")
    installed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connector_id", "purpose", "-stack_level"]

    def __str__(self) -> str:
        return f"profile {self.charging_profile_id} ({self.purpose}, connector {self.connector_id})"


class LocalAuthEntry(models.Model):
    """One idTag of the local authorization list (SendLocalList). `id_tag_key` is the idTag
    case-folded: idTags compare case-insensitively (errata 3.73)."""

    id_tag_key = models.CharField(max_length=20, unique=True)
    id_tag = models.CharField(max_length=20)
    status = models.CharField(max_length=16)
    expiry_date = models.DateTimeField(null=True, blank=True)
    parent_id_tag = models.CharField(max_length=20, blank=True)

    class Meta:
        verbose_name = "local authorization list entry"
        verbose_name_plural = "local authorization list"

    def __str__(self) -> str:
        return self.id_tag


class AuthCacheEntry(models.Model):
    """The authorization cache: the last IdTagInfo the CSMS gave for an idTag."""

    id_tag_key = models.CharField(max_length=20, unique=True)
    id_tag = models.CharField(max_length=20)
    status = models.CharField(max_length=16)
    expiry_date = models.DateTimeField(null=True, blank=True)
    parent_id_tag = models.CharField(max_length=20, blank=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        verbose_name = "authorization cache entry"
        verbose_name_plural = "authorization cache"

    def __str__(self) -> str:
        return self.id_tag


class Reservation(models.Model):
    """A reservation (ReserveNow), from acceptance until it is used, expires or is cancelled."""

    reservation_id = models.IntegerField(unique=True)
    connector_id = models.PositiveSmallIntegerField(help_text="0: any connector of the station")
    id_tag = models.CharField(max_length=20)
    parent_id_tag = models.CharField(max_length=20, blank=True)
    expiry_date = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True, help_text="used / expired / cancelled / ...")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"reservation {self.reservation_id} on connector {self.connector_id}"


class InstalledCertificate(models.Model):
    """A CA certificate installed by the CSMS (InstallCertificate) or at activation:
    CentralSystemRootCertificate or ManufacturerRootCertificate, with its CertificateHashData."""

    certificate_type = models.CharField(max_length=40)
    pem = models.TextField()
    hash_algorithm = models.CharField(max_length=8, default="SHA256")
    issuer_name_hash = models.CharField(max_length=128)
    issuer_key_hash = models.CharField(max_length=128)
    serial_number = models.CharField(max_length=40)
    installed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["installed_at"]

    def __str__(self) -> str:
        return f"{self.certificate_type} {self.serial_number}"


class SecurityEvent(models.Model):
    """The security log (Security Whitepaper §8): every security event, critical or not;
    critical ones are also queued as SecurityEventNotification."""

    at = models.DateTimeField(db_index=True)
    type = models.CharField(max_length=50)
    tech_info = models.CharField(max_length=255, blank=True)
    critical = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.type}"


class OcppFrame(models.Model):
    """Every OCPP-J frame sent to or received from the CSMS, for the configurator's log viewer."""

    class Direction(models.TextChoices):
        IN = "in", "from the CSMS"
        OUT = "out", "to the CSMS"

    at = models.DateTimeField(db_index=True)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    message_type = models.PositiveSmallIntegerField(null=True, blank=True, help_text="2 CALL, 3 CALLRESULT, "
                                                    "4 CALLERROR; empty: not an OCPP-J frame")
    unique_id = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=50, blank=True,
                              help_text="of the CALL (answers: of the CALL answered)")
    frame = models.TextField(help_text="the frame as sent or received (cut to the logged length)")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["unique_id"])]

    def __str__(self) -> str:
        return f"{self.direction} {self.action or self.message_type} {self.unique_id}"

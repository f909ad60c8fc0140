"""The security log (Security Whitepaper ed.2 A04, §8): every security event is a row of table
SecurityEvent, kept in a rolling format (the newest `MAX_LOG_ROWS`); each is also told to the
CSMS as SecurityEventNotification.

Critical events (the whitepaper's list) go through the persisted lane
(`notices.queue_persisted`): guaranteed delivery, even after a reboot. The others go through
the in-memory lane (`notices.send_soon`): sent once the link is up again, lost only by a
reboot. The whitepaper requires sending only critical ones, but OCTT expects the others too
(TC_077 InvalidChargePointCertificate, TC_078 InvalidCentralSystemCertificate), and an
operator wants to see them. techInfo never carries a secret: callers describe, never quote.
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum

from django.utils import timezone
from ocpp.v16 import call
from ocpp.v16.enums import Action

from webapp.station.models import SecurityEvent
from workers.ocpp16.notices import Notices
from workers.ocpp16.payloads import ocpp_time
from workers.ocpp16.txqueue import db

log = logging.getLogger(__name__)

MAX_LOG_ROWS = 10_000  # rolling security log: older rows are pruned
MAX_TYPE_CHARS = 50  # SecurityEventNotification schema
MAX_TECH_INFO_CHARS = 255


class SecurityEventType(StrEnum):
    FIRMWARE_UPDATED = "FirmwareUpdated"
    FAILED_TO_AUTHENTICATE_AT_CENTRAL_SYSTEM = "FailedToAuthenticateAtCentralSystem"
    CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE = "CentralSystemFailedToAuthenticate"
    SETTING_SYSTEM_TIME = "SettingSystemTime"
    STARTUP_OF_THE_DEVICE = "StartupOfTheDevice"
    RESET_OR_REBOOT = "ResetOrReboot"
    SECURITY_LOG_WAS_CLEARED = "SecurityLogWasCleared"
    RECONFIGURATION_OF_SECURITY_PARAMETERS = "ReconfigurationOfSecurityParameters"
    MEMORY_EXHAUSTION = "MemoryExhaustion"
    INVALID_MESSAGES = "InvalidMessages"
    ATTEMPTED_REPLAY_ATTACKS = "AttemptedReplayAttacks"
    TAMPER_DETECTION_ACTIVATED = "TamperDetectionActivated"
    INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
    INVALID_FIRMWARE_SIGNING_CERTIFICATE = "InvalidFirmwareSigningCertificate"
    INVALID_CENTRAL_SYSTEM_CERTIFICATE = "InvalidCentralSystemCertificate"
    INVALID_CHARGE_POINT_CERTIFICATE = "InvalidChargePointCertificate"
    INVALID_TLS_VERSION = "InvalidTLSVersion"
    INVALID_TLS_CIPHER_SUITE = "InvalidTLSCipherSuite"


CRITICAL = frozenset({
    SecurityEventType.FIRMWARE_UPDATED, SecurityEventType.SETTING_SYSTEM_TIME,
    SecurityEventType.STARTUP_OF_THE_DEVICE, SecurityEventType.RESET_OR_REBOOT,
    SecurityEventType.SECURITY_LOG_WAS_CLEARED, SecurityEventType.MEMORY_EXHAUSTION,
    SecurityEventType.TAMPER_DETECTION_ACTIVATED,
})


def _append(at: datetime, event_type: str, tech_info: str, critical: bool) -> None:
    row = SecurityEvent.objects.create(at=at, type=event_type, tech_info=tech_info, critical=critical)
    if row.pk <= MAX_LOG_ROWS:
        return
    newest = SecurityEvent.objects.order_by("-id").values_list("id", flat=True)
    oldest_kept = newest[MAX_LOG_ROWS - 1:MAX_LOG_ROWS]
    if oldest_kept:
        SecurityEvent.objects.filter(id__lt=oldest_kept[0]).delete()


class SecurityLog:
    def __init__(self, notices: Notices) -> None:
        self._notices = notices

    async def record(self, event_type: SecurityEventType | str, tech_info: str = "") -> None:
        """Log the event, then tell the CSMS (critical: persisted; others: when online)."""
        name = str(event_type)[:MAX_TYPE_CHARS]
        tech_info = tech_info[:MAX_TECH_INFO_CHARS]
        critical = name in CRITICAL
        at = timezone.now()
        await db(_append, at, name, tech_info, critical)
        log.warning("security event %s%s%s", name, " (critical)" if critical else "",
                    f": {tech_info}" if tech_info else "")
        # techInfo always present: the library's call.SecurityEventNotification requires the field
        payload = {"type": name, "timestamp": ocpp_time(at), "techInfo": tech_info}
        if critical:
            await self._notices.queue_persisted(Action.security_event_notification, payload)
        else:
            self._notices.send_soon(call.SecurityEventNotification(type=name, timestamp=payload["timestamp"],
                                                                   tech_info=tech_info or None))

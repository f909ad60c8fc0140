"""The configurator's own tables: operator settings, the audit log and REST API tokens.
Writer of all three: web (the configurator and the REST API). Imported by models.py.

Roles are Django groups made by migration 0009: "viewer" may look at everything, "operator" may
also change settings and send commands (permission `station.operate_station`). A superuser has
every permission."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models

TOKEN_PREFIX_CHARS = 8  # shown in lists so a token can be recognised; the rest is never stored


class StationSetting(models.Model):
    """One operator setting (webapp/station/operator_settings.py declares each name, its type
    and default); a row exists only once the setting was changed."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.JSONField(help_text="the setting's value, of the declared type")
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.CharField(max_length=150, blank=True, help_text="username; empty: the system")

    class Meta:
        ordering = ["name"]
        permissions = [("operate_station", "Can change station settings and send commands to the station")]

    def __str__(self) -> str:
        return f"{self.name} = {self.value!r}"


class AuditEntry(models.Model):
    """Who changed what and when: every setting change and every command from the configurator
    or the REST API, accepted or not."""

    class Source(models.TextChoices):
        CONFIGURATOR = "configurator"
        API = "api"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    username = models.CharField(max_length=150)
    source = models.CharField(max_length=16, choices=Source.choices)
    action = models.CharField(max_length=64, help_text="e.g. 'setting', 'availability', 'stop'")
    target = models.CharField(max_length=100, blank=True, help_text="setting name, 'connector 2', 'station'")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=200, help_text="the station's answer, e.g. 'Accepted'")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.target}: {self.outcome}"


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token of the REST API, acting as its user (and with that user's role). Only the
    SHA-256 of the key is stored: the key is shown once, when it is made."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="what uses it, e.g. 'fleet dashboard'")
    prefix = models.CharField(max_length=TOKEN_PREFIX_CHARS, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.user})"

    @classmethod
    def issue(cls, user: object, name: str) -> tuple[ApiToken, str]:
        """A new token and its key (shown once; only the digest is kept)."""
        key = secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=key[:TOKEN_PREFIX_CHARS],
                                   digest=token_digest(key))
        return token, key

"""The configurator's own tables in the admin: the audit log (read-only, filtered), the operator
settings (read-only, linked to the settings page) and the REST API tokens (issued with the key
shown once, the digest never; revoked by operators; a viewer can do neither)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.webapp.roles import OPERATOR, VIEWER, client_as, user_with_role
from webapp.station.operator_models import ApiToken, AuditEntry, StationSetting, token_digest

pytestmark = pytest.mark.django_db

TOKENS = "/admin/station/apitoken/"


def audit(username: str, action: str, day: int, outcome: str) -> AuditEntry:
    entry = AuditEntry.objects.create(username=username, source=AuditEntry.Source.CONFIGURATOR,
                                      action=action, target="connector 2", outcome=outcome)
    AuditEntry.objects.filter(pk=entry.pk).update(at=datetime(2026, 4, day, 9, 0, tzinfo=UTC))
    return entry


# ---- audit log ---------------------------------------------------------------------------------


def test_the_audit_log_lists_filters_and_cannot_be_changed(viewer: Client) -> None:
    audit("alice", "availability", 1, "Scheduled")
    audit("bob", "stop", 3, "Rejected: no_session")
    entry = audit("alice", "setting", 5, "Saved")
    page = "/admin/station/auditentry/"

    listing = viewer.get(page).content.decode()
    assert all(text in listing for text in ("Scheduled", "Rejected: no_session", "Saved"))
    by_user = viewer.get(page, {"username": "bob"}).content.decode()
    assert "Rejected: no_session" in by_user and "Scheduled" not in by_user
    by_action = viewer.get(page, {"action": "setting"}).content.decode()
    assert "Saved" in by_action and "Scheduled" not in by_action
    by_days = viewer.get(page, {"at_from": "2026-04-02", "at_to": "2026-04-04"}).content.decode()
    assert "Rejected: no_session" in by_days and "Scheduled" not in by_days and "Saved" not in by_days

    assert viewer.post(f"{page}{entry.pk}/change/", {"outcome": "forged"}).status_code == 403
    assert viewer.get(f"{page}{entry.pk}/delete/").status_code == 403
    superuser = client_as(User.objects.create_superuser("root"))
    assert superuser.get(f"{page}add/").status_code == 403  # not even a superuser writes history
    entry.refresh_from_db()
    assert entry.outcome == "Saved"


# ---- operator settings -------------------------------------------------------------------------


def test_settings_are_listed_with_label_and_default_and_link_to_the_settings_page(viewer: Client) -> None:
    StationSetting.objects.create(name="hmi_language", value="ru", changed_by="alice")

    page = viewer.get("/admin/station/stationsetting/").content.decode()

    assert "HMI language" in page and "alice" in page and "ru" in page
    assert 'href="/configurator/settings/"' in page
    assert "/admin/station/stationsetting/add/" not in page
    change = "/admin/station/stationsetting/hmi_language/change/"
    assert viewer.post(change, {"value": '"en"'}).status_code == 403
    assert StationSetting.objects.get(name="hmi_language").value == "ru"


# ---- API tokens --------------------------------------------------------------------------------


def test_an_operator_issues_a_token_and_sees_its_key_once(operator: Client) -> None:
    me = User.objects.get(username=OPERATOR)

    response = operator.post(f"{TOKENS}add/", {"user": me.pk, "name": "fleet dashboard"}, follow=True)

    token = ApiToken.objects.get(name="fleet dashboard")
    page = response.content.decode()
    assert "copy its key now, it is not shown again: " in page
    key = page.split("it is not shown again: ", 1)[1].split("<", 1)[0].strip()
    assert token_digest(key) == token.digest and key.startswith(token.prefix)
    assert token.user == me and not token.revoked
    later = "".join(operator.get(url).content.decode() for url in (f"{TOKENS}{token.pk}/change/", TOKENS))
    assert key not in later and token.digest not in later and token.digest not in page
    assert token.prefix in later
    assert AuditEntry.objects.filter(username=OPERATOR, action="api_token_issue", outcome="Issued").exists()


def test_an_operator_issues_tokens_only_for_himself(operator: Client) -> None:
    admin_user = User.objects.create_superuser("admin")

    response = operator.post(f"{TOKENS}add/", {"user": admin_user.pk, "name": "escalate"})

    assert response.status_code == 200  # the form again, with the error
    assert "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_superuser_issues_tokens_for_anyone() -> None:
    root = client_as(User.objects.create_superuser("root"))
    other = user_with_role(VIEWER, "reporting")
    root.post(f"{TOKENS}add/", {"user": other.pk, "name": "reports"})
    assert ApiToken.objects.get(name="reports").user == other


def test_an_operator_revokes_tokens_and_the_audit_log_says_so(operator: Client) -> None:
    owner = user_with_role(VIEWER, "reporting")
    kept, _ = ApiToken.issue(owner, "kept")
    revoked, _ = ApiToken.issue(owner, "old script")

    response = operator.post(TOKENS, {"action": "revoke", "_selected_action": [revoked.pk]}, follow=True)

    assert "1 token(s) revoked." in response.content.decode()
    assert ApiToken.objects.get(pk=revoked.pk).revoked and not ApiToken.objects.get(pk=kept.pk).revoked
    entry = AuditEntry.objects.get(action="api_token_revoke")
    assert (entry.username, entry.outcome) == (OPERATOR, "Revoked") and "old script" in entry.target


def test_a_viewer_sees_tokens_but_can_neither_issue_nor_revoke(viewer: Client) -> None:
    token, _ = ApiToken.issue(user_with_role(OPERATOR), "fleet")

    listing = viewer.get(TOKENS).content.decode()
    assert "fleet" in listing and token.digest not in listing
    assert 'value="revoke"' not in listing
    viewer.post(TOKENS, {"action": "revoke", "_selected_action": [token.pk]})
    assert not ApiToken.objects.get(pk=token.pk).revoked
    assert viewer.get(f"{TOKENS}add/").status_code == 403
    assert viewer.get(f"{TOKENS}{token.pk}/delete/").status_code == 403

"""What the web service tells browsers, checked on a real `python -m webapp` over real HTTP and
websockets: no DEBUG pages, the security headers, the login cookies (HttpOnly, SameSite,
12 h, Secure behind a TLS proxy), logout and expiry, password rules, and the HMI websocket's
Origin check (only the kiosk's pages may open it)."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import sqlite3
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.database import sqlite_url
from tests.webapp.conftest import WebProcess
from webapp.env import EnvError, StationEnv
from workers.common.redis_server import free_port

USERNAME = "operator"
PASSWORD = "plug-in-and-charge-42"
SHIFT_S = 12 * 3600
RECEIVE_S = 5.0
ADMIN_PAGE = "/admin/password_change/"  # any page behind the login
LOGIN_AGAIN = f"/admin/login/?next={ADMIN_PAGE}"
LAN_KIOSK = "https://192.168.7.10"  # a kiosk elsewhere on the LAN, through the TLS proxy


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def cookie(self, name: str) -> SimpleCookie:
        """The Set-Cookie for `name` with its attributes (fails when it was not set)."""
        for header in self.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie(header)
            if name in jar:
                return jar
        raise AssertionError(f"no Set-Cookie for {name}: {self.headers.get_all('Set-Cookie')}")


@dataclass
class Browser:
    """Plain HTTP with a cookie jar and no redirects followed: enough to use the admin."""

    port: int
    extra_headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        sent = {**self.extra_headers, **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            reply = Reply(response.status, response.headers, response.read())
        finally:
            connection.close()
        for header in reply.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return reply

    def csrf_token(self, page: str) -> str:
        reply = self.request("GET", page)
        assert reply.status == 200, (page, reply.status)
        found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', reply.body)
        assert found is not None, f"no CSRF token in {page}"
        return found.group(1).decode()

    def log_in(self, username: str = USERNAME, password: str = PASSWORD) -> Reply:
        token = self.csrf_token("/admin/login/")
        return self.request("POST", "/admin/login/", {"csrfmiddlewaretoken": token, "username": username,
                                                      "password": password, "next": "/admin/"})


def add_staff_user(database: Path) -> None:
    """The configurator's user, straight into the service's database file."""
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, "
            "is_staff, is_active, date_joined) VALUES (?, 1, ?, '', '', '', 1, 1, ?)",
            (make_password(PASSWORD), USERNAME, utc_text(datetime.now(UTC))))


def utc_text(moment: datetime) -> str:
    """A time as Django keeps it in SQLite (naive UTC)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def start_web(database: Path, log_path: Path, **env: str) -> WebProcess:
    """`python -m webapp` with its own database and `env` on top of the test session's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", sqlite_url(database))
        patch.delenv("DJANGO_DEBUG", raising=False)
        patch.delenv("HMI_ALLOWED_ORIGINS", raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        web = WebProcess(free_port(), log_path)
        web.start()
    return web


def copy_database(template: Path, target: Path) -> Path:
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    add_staff_user(target)
    return target


@dataclass
class Site:
    process: WebProcess
    database: Path

    @property
    def port(self) -> int:
        return self.process.port


@pytest.fixture(scope="module")
def web(redis_server: str, migrated_template: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The web service as shipped: plain HTTP on 127.0.0.1, default origins."""
    folder = tmp_path_factory.mktemp("web")
    database = copy_database(migrated_template, folder / "station.sqlite3")
    process = start_web(database, folder / "web.log")
    try:
        yield Site(process, database)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def lan_web(redis_server: str, migrated_template: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Served to the LAN through a TLS proxy, with a kiosk on another machine."""
    folder = tmp_path_factory.mktemp("lan-web")
    database = copy_database(migrated_template, folder / "station.sqlite3")
    process = start_web(database, folder / "web.log", WEB_HTTPS="1", HMI_ALLOWED_ORIGINS=LAN_KIOSK)
    try:
        yield Site(process, database)
    finally:
        process.stop()


# ---- pages and headers ------------------------------------------------------------------

def test_an_unknown_page_is_a_plain_404_not_the_debug_page(web: Site) -> None:
    reply = Browser(web.port).request("GET", "/no-such-page/")

    assert reply.status == 404
    assert b"URLconf" not in reply.body and b"Traceback" not in reply.body


@pytest.mark.parametrize("path", ["/hmi/", "/admin/login/", "/admin/", "/no-such-page/"])
def test_pages_forbid_framing_sniffing_and_foreign_referrers(web: Site, path: str) -> None:
    reply = Browser(web.port).request("GET", path)

    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "same-origin"
    assert reply.headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_static_files_are_not_content_sniffed(web: Site) -> None:
    reply = Browser(web.port).request("GET", "/static/hmi/hmi.js")

    assert reply.status == 200
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


# ---- login, cookies, logout, expiry -----------------------------------------------------

def test_login_cookies_are_http_only_same_site_strict_and_last_one_shift(web: Site) -> None:
    reply = Browser(web.port).log_in()

    assert (reply.status, reply.headers["Location"]) == (302, "/admin/")
    session = reply.cookie("sessionid")["sessionid"]
    assert (session["httponly"], session["samesite"], session["max-age"]) == (True, "Strict", str(SHIFT_S))
    assert not session["secure"]  # plain HTTP: a Secure cookie would never come back
    csrf = reply.cookie("csrftoken")["csrftoken"]
    assert (csrf["httponly"], csrf["samesite"], csrf["secure"]) == (True, "Strict", "")


def test_a_wrong_password_gets_no_session(web: Site) -> None:
    browser = Browser(web.port)

    reply = browser.log_in(password="not-the-password")

    assert reply.status == 200 and b"Please enter the correct username and password" in reply.body
    assert "sessionid" not in browser.cookies


def test_logout_ends_the_session_for_good(web: Site) -> None:
    browser = Browser(web.port)
    browser.log_in()
    session = browser.cookies["sessionid"]

    token = browser.csrf_token(ADMIN_PAGE)  # also proves the login works
    reply = browser.request("POST", "/admin/logout/", {"csrfmiddlewaretoken": token})

    assert reply.status == 200 and "sessionid" not in browser.cookies
    replayed = Browser(web.port, cookies={"sessionid": session}).request("GET", ADMIN_PAGE)
    assert (replayed.status, replayed.headers["Location"]) == (302, LOGIN_AGAIN)


def test_a_session_expires_after_12_hours(web: Site) -> None:
    browser = Browser(web.port)
    browser.log_in()
    database = web.database
    key = browser.cookies["sessionid"]
    [(expires,)] = sqlite3.connect(database).execute(
        "SELECT expire_date FROM django_session WHERE session_key = ?", (key,)).fetchall()
    left = datetime.fromisoformat(expires).replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(hours=11, minutes=59) < left <= timedelta(hours=12)

    with sqlite3.connect(database) as connection:  # twelve hours later
        connection.execute("UPDATE django_session SET expire_date = ? WHERE session_key = ?",
                           (utc_text(datetime.now(UTC) - timedelta(seconds=1)), key))
    reply = browser.request("GET", ADMIN_PAGE)

    assert (reply.status, reply.headers["Location"]) == (302, LOGIN_AGAIN)


def test_behind_a_tls_proxy_the_cookies_are_secure(lan_web: Site) -> None:
    origin = f"https://127.0.0.1:{lan_web.port}"
    browser = Browser(lan_web.port, extra_headers={"X-Forwarded-Proto": "https", "Origin": origin,
                                                   "Referer": f"{origin}/admin/login/"})

    reply = browser.log_in()

    assert (reply.status, reply.headers["Location"]) == (302, "/admin/")
    assert reply.cookie("sessionid")["sessionid"]["secure"]
    assert reply.cookie("csrftoken")["csrftoken"]["secure"]


def test_behind_a_tls_proxy_a_login_posted_from_another_site_is_refused(lan_web: Site) -> None:
    browser = Browser(lan_web.port, extra_headers={"X-Forwarded-Proto": "https",
                                                   "Origin": "https://evil.example"})

    reply = browser.log_in()

    assert reply.status == 403 and "sessionid" not in browser.cookies


@pytest.mark.parametrize("password", ["Ch4rge!", "4815162342108", "password123", "operator-2024"])
def test_weak_passwords_are_refused(password: str) -> None:
    from django.contrib.auth.models import User

    with pytest.raises(ValidationError):
        validate_password(password, User(username="operator-2024"))


def test_a_long_uncommon_password_is_accepted() -> None:
    validate_password(PASSWORD)


# ---- the HMI websocket's origin ---------------------------------------------------------

async def next_of_type(websocket: ClientConnection, kind: str) -> dict[str, Any]:
    """The next message of `kind`, passing over the others the page also gets."""
    async with asyncio.timeout(RECEIVE_S):
        while True:
            message = json.loads(await websocket.recv(decode=True))
            if message["type"] == kind:
                return message


async def opens_with_a_snapshot(url: str, origin: str) -> bool:
    async with connect(url, origin=origin, open_timeout=RECEIVE_S) as websocket:  # type: ignore[arg-type]
        return bool(await next_of_type(websocket, "snapshot"))


async def refusal_status(url: str, origin: str | None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, origin=origin, open_timeout=RECEIVE_S):  # type: ignore[arg-type]
            pass
    return refused.value.response.status_code


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_kiosk_page_may_open_the_hmi_socket(web: Site, redis_client, host: str) -> None:
    assert await opens_with_a_snapshot(f"ws://127.0.0.1:{web.port}/ws/hmi/", f"http://{host}:{web.port}")


@pytest.mark.parametrize("origin", [
    None, "null", "http://evil.example", "http://127.0.0.1:1", "https://127.0.0.1:{port}",
    "http://127.0.0.1.evil.example:{port}",
])
async def test_any_other_origin_is_refused_at_the_handshake(web: Site, redis_client,
                                                            origin: str | None) -> None:
    sent = origin.format(port=web.port) if origin is not None else None

    assert await refusal_status(f"ws://127.0.0.1:{web.port}/ws/hmi/", sent) == 403


async def test_hmi_allowed_origins_replaces_the_default_list(lan_web: Site, redis_client) -> None:
    url = f"ws://127.0.0.1:{lan_web.port}/ws/hmi/"

    assert await opens_with_a_snapshot(url, LAN_KIOSK)
    assert await refusal_status(url, f"http://127.0.0.1:{lan_web.port}") == 403


async def test_an_accepted_socket_still_refuses_anything_but_an_hmi_action(web: Site,
                                                                          redis_client) -> None:
    url, origin = f"ws://127.0.0.1:{web.port}/ws/hmi/", f"http://127.0.0.1:{web.port}"
    async with connect(url, origin=origin, open_timeout=RECEIVE_S) as websocket:  # type: ignore[arg-type]
        await next_of_type(websocket, "snapshot")
        await websocket.send(json.dumps({"action": "set_free_mode", "connector_id": 1, "enabled": True}))

        reply = await next_of_type(websocket, "error")

    assert reply["code"] == "UnknownAction"


# ---- the environment --------------------------------------------------------------------

KIOSK_ORIGINS = ("http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080")


@pytest.mark.parametrize(("web_host", "also"), [
    (None, ()), ("0.0.0.0", ()), ("::", ()), ("127.0.0.1", ()),
    ("192.168.1.10", ("http://192.168.1.10:8080",)), ("fd00::10", ("http://[fd00::10]:8080",)),
])
def test_the_default_origins_are_the_web_services_own(web_host: str | None, also: tuple[str, ...]) -> None:
    environ = {"WEB_PORT": "8080"} | ({} if web_host is None else {"WEB_HOST": web_host})

    env = StationEnv.from_environ(environ)

    assert env.hmi_allowed_origins == KIOSK_ORIGINS + also
    assert env.web_https is False


def test_listed_origins_are_written_as_browsers_send_them() -> None:
    env = StationEnv.from_environ({"HMI_ALLOWED_ORIGINS": " http://192.168.1.10:8000/ , HTTPS://Kiosk.lan:443,"})

    assert env.hmi_allowed_origins == ("http://192.168.1.10:8000", "https://kiosk.lan")


@pytest.mark.parametrize("value", ["", " , ", "*", "http://*.lan", "http://.lan", "kiosk.lan", "ftp://kiosk.lan",
                                   "http://kiosk.lan/hmi/", "http://user@kiosk.lan", "http://kiosk.lan:99999",
                                   "http://kiosk.lan?x=1"])
def test_a_bad_origin_list_stops_start_up_naming_the_variable(value: str) -> None:
    with pytest.raises(EnvError, match="HMI_ALLOWED_ORIGINS"):
        StationEnv.from_environ({"HMI_ALLOWED_ORIGINS": value})


@pytest.mark.parametrize("value", ["yes", "true", "2", ""])
def test_web_https_takes_only_0_or_1(value: str) -> None:
    with pytest.raises(EnvError, match="WEB_HTTPS"):
        StationEnv.from_environ({"WEB_HTTPS": value})

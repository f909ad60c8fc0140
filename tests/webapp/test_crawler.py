"""An anonymous visitor can change nothing and see almost nothing.

The crawler walks EVERY URL pattern of webapp.urls (admin, configurator, API, django-rq, the
station's own pages), found through django.urls itself, so a page someone adds is crawled
without touching this file. Path parameters get plausible values: ids of rows created for the
crawl (one in every table), the values of those rows' fields named like the parameter, the id
of a real RQ job. Each URL gets an anonymous GET and every state-changing method, without and
with a valid CSRF token, and must refuse (401, 403, 404, 405, or a redirect to the login)
without any database row or Redis key changing. Only the kiosk page, the login page and the
API's docs and schema may answer 200 to a GET; only the login form may answer 200 to a POST
(shown again with its error), still changing nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import django_rq
import pytest
import redis
import rq
from django.apps import apps
from django.db import IntegrityError, connection, models, transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.utils import timezone
from django.utils.regex_helper import normalize

from bus import Bus, contract
from bus.enums import ConnectorStatus, Standard
from bus.messages import ConnectorState, StationState

pytestmark = pytest.mark.django_db

PUBLIC_PAGES = frozenset({"hmi", "admin:login", "api:openapi-json", "api:openapi-view"})
"""Views anyone may GET: the kiosk, the login, the API's docs and schema."""
LOGIN_VIEW = "admin:login"
"""The one view that may answer an anonymous POST (or PUT: Django's form views treat it alike)
with 200: the login form, shown again with its error."""
MAX_REDIRECTS = 3  # the admin sends a logout of nobody to its index, which sends it to the login
REFUSALS = frozenset({401, 403, 404, 405})
UNSAFE_METHODS = ("post", "put", "patch", "delete")
MAX_TRIES = 500  # parameter combinations tried per pattern before it counts as unreachable


# ---- the URL map ------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """One URL pattern, with the includes it is reached through."""

    chain: tuple[URLResolver | URLPattern, ...]
    namespace: str

    @property
    def pattern(self) -> URLPattern:
        last = self.chain[-1]
        assert isinstance(last, URLPattern)
        return last

    @property
    def text(self) -> str:
        return "".join(str(piece.pattern) for piece in self.chain)

    @property
    def view_name(self) -> str | None:
        name = self.pattern.name
        return None if name is None else f"{self.namespace}:{name}".lstrip(":")


def every_route(patterns: list[Any], chain: tuple[Any, ...] = (), namespace: str = "") -> Iterator[Route]:
    for piece in patterns:
        if isinstance(piece, URLResolver):
            inner = ":".join(part for part in (namespace, piece.namespace) if part)
            yield from every_route(piece.url_patterns, (*chain, piece), inner)
        else:
            yield Route((*chain, piece), namespace)


# ---- sample data ------------------------------------------------------------------------

def sample_value(field: models.Field) -> Any:
    """A value the column accepts, for a row that only has to exist."""
    if field.choices:
        return field.flatchoices[0][0]
    kind = field.get_internal_type()
    if kind in ("DateTimeField", "DateField", "TimeField"):
        now = timezone.now()
        return {"DateTimeField": now, "DateField": now.date(), "TimeField": now.time()}[kind]
    simple = {"BooleanField": False, "FloatField": 1.0, "DecimalField": Decimal(1), "JSONField": {},
              "DurationField": timedelta(seconds=1), "UUIDField": uuid.uuid4(), "BinaryField": b"",
              "EmailField": "crawler@example.com", "GenericIPAddressField": "127.0.0.1"}
    if kind in simple:
        return simple[kind]
    if kind.endswith("IntegerField"):
        return 1
    text = f"crawl{uuid.uuid4().hex}"
    return text[:field.max_length] if field.max_length else text


def sample_row(model: type[models.Model]) -> models.Model | None:
    """A row of `model`: the first there is, else one made of sample values (None when the
    table's constraints refuse them: its URLs then get the generic ids)."""
    existing = model._default_manager.first()
    if existing is not None:
        return existing
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if isinstance(field, models.AutoField) or field.null or field.has_default() or field.has_db_default():
            continue
        if field.is_relation:
            values[field.name] = sample_row(field.related_model)
        else:
            values[field.name] = sample_value(field)
    try:
        with transaction.atomic():
            return model._default_manager.create(**values)
    except (IntegrityError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Samples:
    rows: dict[type[models.Model], models.Model]
    job_id: str

    def admin_model(self, route: Route) -> type[models.Model] | None:
        for model in self.rows:
            if route.text.startswith(f"admin/{model._meta.app_label}/{model._meta.model_name}/"):
                return model
        return None

    def candidates(self, route: Route, parameter: str) -> list[str]:
        """Plausible values first: the row the admin page is about, fields named like the
        parameter, the RQ job; then the generic ones."""
        model = self.admin_model(route)
        names_the_row = parameter in ("object_id", "id", "pk")
        first = [str(self.rows[model].pk)] if model is not None and names_the_row else []
        named = [str(value) for row in self.rows.values()
                 if (value := getattr(row, parameter, None)) not in (None, "")]
        jobs = [self.job_id] if "job" in parameter else []
        indexes = ["0"] if parameter.endswith("index") else []
        generic = [str(row.pk) for row in self.rows.values()]
        labels = [config.label for config in apps.get_app_configs()]
        return list(dict.fromkeys([*first, *jobs, *indexes, *named, *generic, "1", "0", *labels, "x"]))


def concrete_path(route: Route, samples: Samples) -> str | None:
    """A path that resolves to this very pattern, or None when none was found."""
    options = [normalize(piece.pattern.regex.pattern) for piece in route.chain]
    for combination in itertools.product(*options):
        template = "".join(text for text, _ in combination)
        names = [name for _, parameters in combination for name in parameters]
        values = itertools.product(*(samples.candidates(route, name) for name in names))
        for chosen in itertools.islice(values, MAX_TRIES):
            path = "/" + template % dict(zip(names, chosen, strict=True))
            try:
                if resolve(path).func is route.pattern.callback:
                    return path
            except Resolver404:
                continue
    return None


# ---- what must not change ---------------------------------------------------------------

def database_state() -> dict[str, list[str]]:
    state = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            state[table] = sorted(repr(row) for row in cursor.fetchall())
    return state


def redis_state(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every lasting key and its value; keys with a TTL (heartbeats) change on their own."""
    return {key: client.dump(key) for key in client.scan_iter() if client.ttl(key) == -1}


def changes(before: dict[Any, Any], after: dict[Any, Any]) -> list[str]:
    return sorted(str(name) for name in before.keys() | after.keys() if before.get(name) != after.get(name))


# ---- the visitor ------------------------------------------------------------------------

@dataclass
class Visitor:
    """An anonymous browser; with `csrf`, one that holds a valid CSRF cookie and sends it back."""

    client: Client
    samples: Samples
    csrf: bool

    def token(self) -> str:
        return self.client.cookies["csrftoken"].value

    def send(self, method: str, path: str) -> HttpResponse:
        if method == "get":
            return self.client.get(path)
        headers = {"X-CSRFToken": self.token()} if self.csrf else {}
        form = {"action": "delete_selected", "post": "yes", "value": "1", "enabled": "on",
                "_selected_action": [str(row.pk) for row in self.samples.rows.values()]}
        if self.csrf:
            form["csrfmiddlewaretoken"] = self.token()
        if method == "post":
            return self.client.post(path, form, headers=headers)
        return getattr(self.client, method)(path, json.dumps({"value": 1}), content_type="application/json",
                                            headers=headers)


def is_refusal(response: HttpResponse, redirects_left: int = MAX_REDIRECTS) -> bool:
    """Refused: an error that says so, or redirects that end at the login page."""
    if response.status_code in REFUSALS:
        return True
    if response.status_code != 302 or redirects_left == 0:
        return False
    target = urlsplit(response["Location"]).path
    try:
        if resolve(target).view_name == LOGIN_VIEW:
            return True
    except Resolver404:
        return False
    return is_refusal(Client().get(target), redirects_left - 1)


def verdict(route: Route, method: str, response: HttpResponse) -> bool:
    if is_refusal(response):
        return True
    if method == "get" and route.view_name in PUBLIC_PAGES:
        return response.status_code == 200
    return route.view_name == LOGIN_VIEW and response.status_code == 200


# ---- fixtures ---------------------------------------------------------------------------

async def put_station_on_the_bus() -> None:
    """Some bus state a careless view could change."""
    bus = Bus("crawler")
    try:
        await bus.set(contract.STATION, StationState(status=ConnectorStatus.AVAILABLE, estop=False,
                                                     io_online=True))
        await bus.set(contract.CONNECTOR, ConnectorState(connector_id=1, standard=Standard.CCS,
                                                         status=ConnectorStatus.AVAILABLE), connector_id=1)
    finally:
        await bus.close()


@pytest.fixture
def samples(redis_client: redis.Redis) -> Samples:
    rows = {}
    for model in apps.get_models():
        if model._meta.managed and not model._meta.proxy and (row := sample_row(model)) is not None:
            rows[model] = row
    # rq's own Queue: django-rq's would hold the job back until the test's transaction commits
    queue = rq.Queue("default", connection=django_rq.get_connection("default"))
    job = queue.enqueue("builtins.len", "queued for the crawl")
    asyncio.run(put_station_on_the_bus())
    return Samples(rows, job.id)


@pytest.fixture
def raw_redis(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """Bytes in, bytes out: DUMP values are not text."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        yield client
    finally:
        client.close()


def visitors(samples: Samples) -> list[Visitor]:
    plain = Visitor(Client(enforce_csrf_checks=True), samples, csrf=False)
    with_token = Visitor(Client(enforce_csrf_checks=True), samples, csrf=True)
    assert with_token.client.get("/admin/login/").status_code == 200  # sets the CSRF cookie
    return [plain, with_token]


# ---- tests ------------------------------------------------------------------------------

def test_every_url_pattern_gets_a_path(samples: Samples) -> None:
    routes = list(every_route(get_resolver().url_patterns))
    seen: set[str] = set()
    unreachable = []

    for route in routes:
        shadowed = route.text in seen  # an earlier pattern with the same text answers its paths
        seen.add(route.text)
        if not shadowed and concrete_path(route, samples) is None:
            unreachable.append(route.text)

    assert len(routes) > 50  # admin, API, django-rq, configurator, HMI
    assert unreachable == []


def test_the_csrf_token_the_crawler_sends_is_valid(samples: Samples) -> None:
    plain, with_token = visitors(samples)

    assert plain.send("post", "/admin/login/").status_code == 403  # CSRF failure
    refused_login = with_token.send("post", "/admin/login/")
    assert refused_login.status_code == 200 and b"errornote" in refused_login.content


def test_an_anonymous_visitor_changes_nothing_and_sees_only_public_pages(samples: Samples,
                                                                       raw_redis: redis.Redis) -> None:
    crawlers = visitors(samples)
    database, bus = database_state(), redis_state(raw_redis)
    problems: list[str] = []

    for route in every_route(get_resolver().url_patterns):
        path = concrete_path(route, samples)
        if path is None:
            continue  # reported by test_every_url_pattern_gets_a_path
        requests = [("get", crawlers[0]), *itertools.product(UNSAFE_METHODS, crawlers)]
        for method, visitor in requests:
            response = visitor.send(method, path)
            if not verdict(route, method, response):
                token = " with CSRF token" if visitor.csrf and method != "get" else ""
                problems.append(f"{method.upper()} {path}{token} ({route.view_name}): {response.status_code} "
                                f"{response.get('Location', '')}".rstrip())
        changed = changes(database, database_state()) + changes(bus, redis_state(raw_redis))
        if changed:
            problems.append(f"{path} ({route.view_name}) changed {changed}")
            database, bus = database_state(), redis_state(raw_redis)

    assert problems == [], "\n".join(problems)

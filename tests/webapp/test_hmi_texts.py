"""The HMI's one text table (hmi_static/i18n.js): every key the page or the station can send
has an English and a Russian text."""

from __future__ import annotations

import re

import pytest

from bus.enums import AuthorizationStatus, ConnectorErrorCode, ConnectorStatus, ReplyError
from webapp.env import REPO_ROOT
from webapp.station.hmi_messages import CONNECTOR_QR_KEY, STOP_NEEDS_CARD, UNKNOWN, HmiErrorCode
from webapp.station.operator_settings import QR_KEYS

STATIC = REPO_ROOT / "hmi_static"
TEMPLATE = REPO_ROOT / "webapp" / "station" / "templates" / "station" / "hmi.html"
LANGUAGES = ("en", "ru")


def texts() -> dict[str, dict[str, str]]:
    """Each language's table, read from the JS source."""
    source = (STATIC / "i18n.js").read_text(encoding="utf-8")
    tables = {}
    for lang in LANGUAGES:
        block = re.search(rf"^  {lang}: \{{\n(.*?)^  \}},", source, re.S | re.M)
        assert block, f"no {lang} table in i18n.js"
        pairs = re.findall(r'^    "?([\w.]+)"?: "(.*)",$', block.group(1), re.M)
        tables[lang] = dict(pairs)
        assert len(tables[lang]) == block.group(1).count("\n"), f"unparsed lines in the {lang} table"
    return tables


def test_every_language_has_the_same_keys() -> None:
    tables = texts()
    assert set(tables["ru"]) == set(tables["en"])
    assert all(text.strip() for table in tables.values() for text in table.values())


@pytest.mark.parametrize(("prefix", "values"), [
    ("status", [*ConnectorStatus, UNKNOWN]),
    ("auth", list(AuthorizationStatus)),
    ("error", [*HmiErrorCode, *ReplyError]),
    ("fault", list(ConnectorErrorCode)),
    ("qr", [*(key for _, key in QR_KEYS), CONNECTOR_QR_KEY]),
    ("reason", [STOP_NEEDS_CARD]),
    ("screen", [f"{kind}{part}" for kind in ("estop", "faulted", "blocked") for part in ("", "_text")]),
])
def test_every_value_the_station_sends_has_a_text(prefix: str, values: list[str]) -> None:
    table = texts()["en"]
    missing = [f"{prefix}.{value}" for value in values if f"{prefix}.{value}" not in table]
    assert missing == []


def test_every_key_in_the_page_and_script_has_a_text() -> None:
    table = texts()["en"]
    used = set(re.findall(r'data-text="([\w.]+)"', TEMPLATE.read_text(encoding="utf-8")))
    used |= set(re.findall(r'\bt\("([\w.]+)"\)', (STATIC / "hmi.js").read_text(encoding="utf-8")))
    assert used, "found no text keys: the patterns above are out of date"
    assert sorted(used - set(table)) == []

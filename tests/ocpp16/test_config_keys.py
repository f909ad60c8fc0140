"""The configuration keys and their store, without a running service: parsing rules, what
ChangeConfiguration would answer, what GetConfiguration reports, the pacer that follows a key."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.v16.enums import ConfigurationStatus

from webapp.station.models import RuntimeSettings
from workers.ocpp16 import config_keys as keys
from workers.ocpp16.config_keys import (
    ALL_KEYS,
    Access,
    ConfigKey,
    ConfigurationStore,
    Holder,
    InvalidValue,
    Kind,
)
from workers.ocpp16.pacing import IntervalPacer

ACCEPTED, REJECTED = ConfigurationStatus.accepted, ConfigurationStatus.rejected
OWN_KEYS = [key for key in ALL_KEYS if key.holder is Holder.OCPP16]
NINE_MEASURANDS = ",".join(["Voltage.L1", "Voltage.L2", "Voltage.L3", "Current.Import.L1",
                            "Current.Import.L2", "Current.Import.L3", "SoC", "Power.Active.Import",
                            "Energy.Active.Import.Register"])


@pytest.mark.parametrize(("key", "text", "value"), [
    (keys.LOCAL_PRE_AUTHORIZE, "TRUE", True),
    (keys.LOCAL_PRE_AUTHORIZE, " false ", False),
    (keys.TRANSACTION_MESSAGE_ATTEMPTS, "007", 7),
    (keys.TRANSACTION_MESSAGE_RETRY_INTERVAL, "0.25", 0.25),
    (keys.HEARTBEAT_INTERVAL, "86400", 86_400),
    (keys.METER_VALUES_SAMPLED_DATA, "Voltage.L1, SoC", ("Voltage.L1", "SoC")),
    (keys.STOP_TXN_ALIGNED_DATA, "", ()),
    (keys.CONNECTOR_PHASE_ROTATION, "0.RST,1.Unknown", ("0.RST", "1.Unknown")),
    (keys.CPO_NAME, "  Example CPO ", "Example CPO"),
])
def test_a_valid_value_parses_to_its_type(key: ConfigKey, text: str, value: Any) -> None:
    assert key.parse(text) == value
    assert key.parse(key.format(value)) == value


@pytest.mark.parametrize(("key", "text", "rule"), [
    (keys.LOCAL_PRE_AUTHORIZE, "yes", "true or false"),
    (keys.TRANSACTION_MESSAGE_ATTEMPTS, "1_000", "integer"),
    (keys.TRANSACTION_MESSAGE_ATTEMPTS, "\u0661\u0662", "integer"),  # Arabic-Indic digits
    (keys.TRANSACTION_MESSAGE_ATTEMPTS, "+5", "integer"),
    (keys.TRANSACTION_MESSAGE_ATTEMPTS, "3.0", "integer"),
    (keys.TRANSACTION_MESSAGE_ATTEMPTS, "0", "at least 1"),
    (keys.TRANSACTION_MESSAGE_ATTEMPTS, "101", "at most 100"),
    (keys.HEARTBEAT_INTERVAL, "-5", "at least 1"),
    (keys.HEARTBEAT_INTERVAL, "ten", "a number"),
    (keys.HEARTBEAT_INTERVAL, "1e3", "a number"),
    (keys.HEARTBEAT_INTERVAL, "nan", "a number"),
    (keys.HEARTBEAT_INTERVAL, "inf", "a number"),
    (keys.HEARTBEAT_INTERVAL, "1.2345", "a number"),
    (keys.HEARTBEAT_INTERVAL, "86401", "at most 86400"),
    (keys.WEB_SOCKET_PING_INTERVAL, "-1", "at least 0"),
    (keys.METER_VALUES_SAMPLED_DATA, "Temperature", "supported measurands"),
    (keys.METER_VALUES_SAMPLED_DATA, "energy.active.import.register", "supported measurands"),
    (keys.METER_VALUES_SAMPLED_DATA, "Voltage.L4", "supported measurands"),
    (keys.METER_VALUES_SAMPLED_DATA, "SoC,,Voltage", "empty items"),
    (keys.METER_VALUES_SAMPLED_DATA, "SoC,", "empty items"),
    (keys.METER_VALUES_SAMPLED_DATA, "SoC,SoC", "twice"),
    (keys.METER_VALUES_SAMPLED_DATA, NINE_MEASURANDS, "at most 8 items"),
    (keys.CONNECTOR_PHASE_ROTATION, "garbage", "<connector>.<rotation>"),
    (keys.CONNECTOR_PHASE_ROTATION, "-1.RST", "<connector>.<rotation>"),
    (keys.CPO_NAME, "bell\x07", "printable"),
    (keys.CPO_NAME, "x" * 65, "at most 64"),
    (keys.AUTHORIZATION_KEY, "0" * 41, "at most 40"),
    (keys.CPO_NAME, "x" * 501, "at most 500"),
    (keys.STATION_FREE_MODE_ID_TAG, "", "at least 1"),
    (keys.STATION_FREE_MODE_ID_TAG, "X" * 21, "at most 20"),
])
def test_an_invalid_value_names_the_rule_it_breaks(key: ConfigKey, text: str, rule: str) -> None:
    with pytest.raises(InvalidValue, match=rule.replace(".", r"\.")):
        key.parse(text)


def test_change_answers_not_supported_rejected_or_accepted_and_changes_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    """OCTT TC_040_1 / TC_040_2 / TC_021 at the store: nothing changes until `apply`."""
    store = ConfigurationStore({"NumberOfConnectors": "2"})
    caplog.set_level("INFO")
    assert store.check_change("NoSuchKey", "1")[0] is ConfigurationStatus.not_supported
    assert store.check_change("NumberOfConnectors", "3")[0] is REJECTED  # read-only
    assert store.check_change("HeartbeatInterval", "-1")[0] is REJECTED
    assert store.check_change("AuthorizationKey", "z" * 41)[0] is REJECTED
    status, key, value = store.check_change("heartbeatINTERVAL", "60")  # CiString50: any case
    assert (status, key, value) == (ACCEPTED, keys.HEARTBEAT_INTERVAL, 60)
    assert store.get(keys.HEARTBEAT_INTERVAL) == 300 and store.get(keys.NUMBER_OF_CONNECTORS) == 2
    assert "NoSuchKey" in caplog.text and "NumberOfConnectors: read-only" in caplog.text
    assert "HeartbeatInterval rejected: must be at least 1" in caplog.text
    assert "z" * 41 not in caplog.text  # a secret key's value is never logged


def test_guards_refuse_and_reboot_required_keys_say_so() -> None:
    restart_key = ConfigKey("NeedsRestart", Kind.INT, Access.READ_WRITE, "1", 0, 9, reboot_required=True)
    store = ConfigurationStore(keys=[restart_key, keys.SECURITY_PROFILE])
    assert store.check_change("NeedsRestart", "2")[0] is ConfigurationStatus.reboot_required

    def only_up(value: int) -> None:
        if value <= store.get(keys.SECURITY_PROFILE):
            raise InvalidValue("may only go up")
    store.apply(keys.SECURITY_PROFILE, 1)
    store.guard(keys.SECURITY_PROFILE, only_up)
    assert store.check_change("SecurityProfile", "0")[0] is REJECTED
    assert store.check_change("SecurityProfile", "2")[0] is ACCEPTED


def test_readable_keys_are_every_key_but_write_only_ones_each_once() -> None:
    store = ConfigurationStore()
    every, unknown = store.readable(None)
    assert unknown == [] and keys.AUTHORIZATION_KEY not in every
    assert set(every) == {key for key in ALL_KEYS if key.access is not Access.WRITE}
    found, unknown = store.readable(["HeartbeatInterval", "heartbeatinterval", "Nope", "AuthorizationKey",
                                     "Nope"])
    assert found == [keys.HEARTBEAT_INTERVAL] and unknown == ["Nope", "AuthorizationKey"]


def test_every_key_fits_in_one_get_configuration_answer() -> None:
    assert len(ALL_KEYS) <= int(keys.GET_CONFIGURATION_MAX_KEYS.default)
    assert all(len(key.name) <= 50 and len(key.default) <= 500 for key in ALL_KEYS)
    assert len({key.name.casefold() for key in ALL_KEYS}) == len(ALL_KEYS)
    for key in ALL_KEYS:
        key.parse(key.default)
    assert keys.STATION_FREE_MODE_ID_TAG.default == RuntimeSettings.DEFAULT_FREE_MODE_ID_TAG


def test_stored_values_win_over_defaults_and_bad_ones_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    store = ConfigurationStore(defaults={"HeartbeatInterval": "30", "MessageTimeout": "5"},
                               stored={"HeartbeatInterval": "45", "MessageTimeout": "-1", "Gone": "1",
                                       "StationFreeMode": "true"})
    assert store.get(keys.HEARTBEAT_INTERVAL) == 45 and store.get(keys.MESSAGE_TIMEOUT) == 5
    assert "MessageTimeout must be at least 1" in caplog.text and "Gone" in caplog.text
    assert "StationFreeMode is not one of ocpp16's" in caplog.text


def test_keys_smartw_holds_are_never_read_or_changed_in_the_store() -> None:
    store = ConfigurationStore()
    with pytest.raises(ValueError, match="held by smartw"):
        store.get(keys.STATION_FREE_MODE)
    with pytest.raises(ValueError, match="held by smartw"):
        store.apply(keys.STATION_FREE_MODE, True)


def test_apply_runs_listeners_and_one_that_fails_does_not_undo_the_change() -> None:
    store = ConfigurationStore()
    seen: list[Any] = []

    def broken(*_: Any) -> None:
        raise RuntimeError("listener bug")
    store.listen(keys.HEARTBEAT_INTERVAL, broken)
    store.listen(keys.HEARTBEAT_INTERVAL, lambda key, value: seen.append((key.name, value)))
    store.apply(keys.HEARTBEAT_INTERVAL, 12)
    assert seen == [("HeartbeatInterval", 12)] and store.text(keys.HEARTBEAT_INTERVAL) == "12"
    with pytest.raises(InvalidValue):
        store.apply(keys.HEARTBEAT_INTERVAL, 0)  # out of bounds: refused before anything changes
    assert store.get(keys.HEARTBEAT_INTERVAL) == 12


GARBAGE = st.one_of(st.text(max_size=600),
                    st.sampled_from(["", " ", "-0", "-0.0", "1e-05", "nan", "0x10", "1_0", "\u0661", "TRUE"]))
TYPED_TEXT = {
    Kind.BOOL: st.sampled_from(["true", "false", "True", " FALSE ", "yes", "1"]),
    Kind.INT: st.integers(-5, 20_000).map(str),
    # up to 8 significant digits: a formatter that rounds (e.g. "%g") would not read back equal
    Kind.SECONDS: st.builds("{}.{:03d}".format, st.integers(-10, 100_000), st.integers(0, 999))
    | st.from_regex(r"\s*-?[0-9]{1,6}(\.[0-9]{1,4})?\s*", fullmatch=True),
    Kind.CSL: st.lists(st.sampled_from([*sorted(keys.SUPPORTED_MEASURANDS), "Voltage.L1", "Temperature", "",
                                        "0.RST", "1.TSR", "Core", " SoC "]), max_size=10).map(",".join),
    Kind.TEXT: st.text(max_size=70),
}
KEY_AND_TEXT = st.sampled_from(OWN_KEYS).flatmap(
    lambda key: st.tuples(st.just(key), TYPED_TEXT[key.kind] | GARBAGE))


@settings(max_examples=500, deadline=None)
@given(key_and_text=KEY_AND_TEXT, name_case=st.sampled_from([str, str.lower, str.upper]))
def test_any_offered_string_is_refused_or_reads_back_equal(key_and_text: tuple[ConfigKey, str],
                                                           name_case: Any) -> None:
    key, text = key_and_text
    store = ConfigurationStore()
    before = store.text(key)
    status, found, value = store.check_change(name_case(key.name), text)
    assert found is key
    if key.access is Access.READ:
        assert status is REJECTED
    if status is REJECTED:
        assert store.text(key) == before
        return
    store.apply(key, value)
    assert store.get(key) == value
    assert ConfigurationStore(stored={key.name: store.text(key)}).get(key) == value  # as after a reboot


async def test_pacer_follows_a_shorter_interval_at_once() -> None:
    store = ConfigurationStore({"MeterValueSampleInterval": "300"})
    pacer = IntervalPacer(store, keys.METER_VALUE_SAMPLE_INTERVAL)
    waiting = asyncio.create_task(pacer.wait())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    started = time.monotonic()
    store.apply(keys.METER_VALUE_SAMPLE_INTERVAL, 0.2)  # 0.05 s of it have passed already
    await asyncio.wait_for(waiting, 2)
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    await asyncio.wait_for(pacer.wait(), 2)  # the next one counts from that tick
    assert 0.15 < time.monotonic() - started < 0.5


async def test_pacer_waits_while_the_interval_is_zero() -> None:
    store = ConfigurationStore({"MeterValueSampleInterval": "0"})
    pacer = IntervalPacer(store, keys.METER_VALUE_SAMPLE_INTERVAL)
    waiting = asyncio.create_task(pacer.wait())
    await asyncio.sleep(0.2)
    assert not waiting.done()
    store.apply(keys.METER_VALUE_SAMPLE_INTERVAL, 0.1)
    await asyncio.wait_for(waiting, 2)

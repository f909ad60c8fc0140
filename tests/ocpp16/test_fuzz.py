"""Fuzzing ocpp16's receive path: over 10,000 random and malformed frames per run.

A real `CsmsConnection` (real handlers, the test's own context) on a real websocket pair
(tests/ocpp16/wire_pair.py) gets frames hypothesis builds: garbage text, any JSON, and arrays
shaped like OCPP-J messages with wrong types, lengths, ids (huge ones too), unknown and known
actions and payloads from the 1.6 schemas' own field names. After each batch a sentinel CALL
shows that everything before it was processed. Asserted (OCPP-J §4; ocpp16.md §4, §6.2):

- every frame that declares itself a CALL (a JSON array [2, "<string id>", ...]) gets exactly
  one answer with its id, in order: a CALLRESULT, or a CALLERROR with a code of OCPP-J Table 7
  in 1.6 spelling; anything else gets no answer at all;
- no handler fails on what its schema let through (no InternalError);
- the connection stays up and the receive loop never ends.

Actions that act on the station (Reset would really restart this test process, RemoteStart,
UnlockConnector, ChangeAvailability wait for a smartw...) always carry one property their
schema forbids: they are fuzzed up to the schema check. The others may reach their handlers.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.v16.enums import Action

from bus import Bus
from tests.ocpp16.wire_pair import WirePair, wire_pair
from workers.ocpp16.frames import request_validator

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 100
DRAWN_PER_EXAMPLE = 10  # frames hypothesis builds (it is slow at big examples: ~2 ms a frame)
MUTANTS_PER_EXAMPLE = 91  # frames made from those by random edits (fast): 10,100 frames a run
MUTATION_CHARACTERS = '[]{}",:-.0123456789eE \\nulltruefalse'
OCPP_J_1_6_CODES = frozenset({  # OCPP-J 1.6 Table 7, as spelled there
    "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
    "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
    "TypeConstraintViolation", "GenericError"})
ACTIONS = sorted(str(action) for action in Action)
REACHABLE_ACTIONS = frozenset({  # handlers that only read or change ocpp16's own state
    "GetConfiguration", "ChangeConfiguration", "ClearCache", "GetLocalListVersion", "SendLocalList",
    "DataTransfer", "CancelReservation", "ClearChargingProfile", "GetCompositeSchedule",
    "GetInstalledCertificateIds"})
FIELD_NAMES = sorted({name for action in ACTIONS
                      for name in request_validator(action).schema.get("properties", {})})

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)
leaf = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
        | st.floats(allow_nan=False, allow_infinity=False) | text)
json_value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(text, inner, max_size=3), max_leaves=6)
HUGE_ID = "x" * 20_000  # OCPP-J allows 36 characters
message_ids = st.one_of(*[text] * 20, st.text(min_size=37, max_size=500), st.just(HUGE_ID))
actions = st.one_of(st.sampled_from(ACTIONS), st.sampled_from(sorted(REACHABLE_ACTIONS)), text)
payloads = st.one_of(st.dictionaries(st.sampled_from(FIELD_NAMES), json_value, max_size=4),
                     st.dictionaries(st.sampled_from(FIELD_NAMES) | text, json_value, max_size=3),
                     st.none(), json_value)
extras = st.lists(json_value, min_size=1, max_size=2)


@st.composite
def calls(draw: st.DrawFn) -> str:
    """[2, id, action, payload], now and then short of or beyond its four elements."""
    action = draw(actions)
    payload = draw(payloads)
    if action in ACTIONS and action not in REACHABLE_ACTIONS:
        payload = {**(payload if isinstance(payload, dict) else {}), "fuzzNeverValid": True}
    elements = [2, draw(message_ids), action, payload]
    shape = draw(st.sampled_from(["whole"] * 8 + ["short", "long"]))
    if shape == "short":
        elements = elements[:draw(st.integers(2, 3))]
    elif shape == "long":
        elements += draw(extras)
    return json.dumps(elements)


@st.composite
def other_messages(draw: st.DrawFn) -> str:
    """Answers nobody asked for, unknown message types, ids that are no strings."""
    kind = draw(st.one_of(st.sampled_from([3, 4, 0, 1, 5, -2, 2.0, "2"]), leaf))
    unique_id = draw(message_ids) if draw(st.booleans()) else draw(leaf)
    return json.dumps([kind, unique_id, *draw(st.lists(json_value, max_size=4))])


@st.composite
def cut_short(draw: st.DrawFn) -> str:
    whole = draw(calls())
    return whole[:draw(st.integers(0, len(whole)))]


frames = st.one_of(calls(), calls(), calls(), other_messages(), cut_short(), json_value.map(json.dumps), text)


def mutant(frame: str, rng: random.Random) -> str:
    """The frame with one random edit: a character changed, inserted or removed, a slice
    repeated, or the text cut; JSON punctuation and digits are the likeliest to matter."""
    at = rng.randrange(len(frame) + 1)
    character = rng.choice(MUTATION_CHARACTERS)
    edits = (frame[:at] + character + frame[at + 1:], frame[:at] + character + frame[at:],
             frame[:at] + frame[at + 1:], frame[:at] + frame[at:at + rng.randrange(1, 20)] + frame[at:],
             frame[:at])
    return rng.choice(edits)


def call_id(frame: str) -> str | None:
    """The id a frame must be answered with: it declares itself a CALL (OCPP-J §4.2.1)."""
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    if isinstance(message, list) and len(message) >= 2 and type(message[0]) is int and message[0] == 2 \
            and isinstance(message[1], str):
        return message[1]
    return None


def check_answer(answer: Any) -> str:
    """Assert the frame is a well-formed CALLRESULT or 1.6 CALLERROR; returns its kind or code."""
    assert isinstance(answer, list) and answer[0] in (3, 4), answer
    if answer[0] == 3:
        assert len(answer) == 3 and isinstance(answer[2], dict), answer
        return "CALLRESULT"
    assert len(answer) == 5 and answer[2] in OCPP_J_1_6_CODES, answer
    assert isinstance(answer[3], str) and isinstance(answer[4], dict), answer
    return answer[2]


async def exchange(pair: WirePair, batch: list[str], outcomes: Counter[str]) -> None:
    sentinel = f"sentinel-{uuid.uuid4()}"
    for frame in batch:
        await pair.send(frame)
    await pair.send(json.dumps([2, sentinel, "NoSuchAction", {}]))
    answers: list[Any] = []
    while (answer := await pair.next_frame())[1] != sentinel:
        answers.append(answer)
    expected = [(unique_id, frame) for frame in batch if (unique_id := call_id(frame)) is not None]
    assert [answer[1] for answer in answers] == [unique_id for unique_id, _ in expected]
    for answer, (_, frame) in zip(answers, expected, strict=True):
        outcome = check_answer(answer)
        assert outcome != "InternalError", f"a handler failed on {frame[:300]}: {answer}"
        outcomes[outcome] += 1
    assert pair.up, "the connection went down"


def test_random_and_malformed_frames_get_exactly_the_answers_ocpp_j_asks_for(redis_client) -> None:
    loop = asyncio.new_event_loop()
    outcomes: Counter[str] = Counter()
    sent = 0

    async def open_pair() -> tuple[Bus, Any, WirePair]:
        bus = Bus("fuzz")
        opening = wire_pair(bus)
        return bus, opening, await opening.__aenter__()

    bus, opening, pair = loop.run_until_complete(open_pair())
    try:
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(st.lists(frames, min_size=DRAWN_PER_EXAMPLE, max_size=DRAWN_PER_EXAMPLE),
               st.randoms(use_true_random=False))
        def fuzz(drawn: list[str], rng: random.Random) -> None:
            nonlocal sent
            batch = drawn + [mutant(rng.choice(drawn), rng) for _ in range(MUTANTS_PER_EXAMPLE)]
            loop.run_until_complete(exchange(pair, batch, outcomes))
            sent += len(batch)

        fuzz()
    finally:
        loop.run_until_complete(opening.__aexit__(None, None, None))
        loop.run_until_complete(bus.close())
        loop.close()
    print(f"fuzz: {sent} frames sent, {sum(outcomes.values())} CALLs answered: {dict(outcomes)}")
    assert sent >= 10_000
    assert outcomes["CALLRESULT"] > 0 and outcomes["FormationViolation"] > 0  # both paths were reached

"""EM4100 frames from a byte stream: split reads, garbage, bad checksums."""

from __future__ import annotations

import logging

import pytest

from workers.drivers.em4100 import Em4100Parser, FrameError, decode_frame, encode_frame, normalise_uid

CARD = "0A00B1C2D3"
FRAME = b"\x020A00B1C2D3AA\x03"  # XOR 0A^00^B1^C2^D3 = AA (reference/hardware.md §6.1)
OTHER = encode_frame("1122334455")


def test_a_card_id_encodes_to_the_documented_frame() -> None:
    assert encode_frame(CARD) == FRAME
    assert encode_frame(CARD.lower()) == FRAME


def test_a_frame_decodes_to_the_upper_case_id_tag() -> None:
    assert decode_frame(FRAME) == CARD
    assert decode_frame(b"\x020a00b1c2d3aa\x03") == CARD


@pytest.mark.parametrize("chunks", [
    [FRAME],
    [FRAME[:1], FRAME[1:7], FRAME[7:]],
    [bytes([b]) for b in FRAME],
])
def test_frames_split_across_reads_are_reassembled(chunks) -> None:
    parser = Em4100Parser()
    seen = [uid for chunk in chunks for uid in parser.feed(chunk)]
    assert seen == [CARD]


def test_garbage_between_frames_is_skipped() -> None:
    parser = Em4100Parser()
    assert parser.feed(b"\x00\xffnoise\x03" + FRAME + b"\r\n\x03\x03" + OTHER + b"zz") == [CARD, "1122334455"]
    assert parser.rejected == 0


def test_bad_checksum_is_rejected_with_a_reason_and_the_next_frame_still_reads(caplog) -> None:
    parser = Em4100Parser(source="ttyTEST")
    bad = b"\x020A00B1C2D3AB\x03"
    with caplog.at_level(logging.WARNING):
        assert parser.feed(bad + FRAME) == [CARD]
    assert parser.rejected == 1
    assert "bad checksum for 0A00B1C2D3: got AB, expected AA" in caplog.text
    assert "ttyTEST" in caplog.text


def test_a_frame_cut_short_by_a_new_frame_is_rejected_and_the_new_one_reads() -> None:
    parser = Em4100Parser()
    assert parser.feed(FRAME[:6] + OTHER) == ["1122334455"]
    assert parser.rejected == 1


@pytest.mark.parametrize("frame", [
    b"\x020A00B1C2D3AA\x04",  # wrong terminator
    b"\x020A00B1C2G3AA\x03",  # not hex
])
def test_malformed_frames_are_rejected(frame) -> None:
    with pytest.raises(FrameError):
        decode_frame(frame)
    parser = Em4100Parser()
    assert parser.feed(frame) == []
    assert parser.rejected == 1


def test_an_incomplete_frame_waits_for_more_bytes() -> None:
    parser = Em4100Parser()
    assert parser.feed(FRAME[:-1]) == []
    assert parser.rejected == 0
    assert parser.feed(FRAME[-1:]) == [CARD]


@pytest.mark.parametrize("uid", ["0A00B1C2", "0A00B1C2D3E4", "0A00B1C2DX", ""])
def test_ids_that_are_not_ten_hex_digits_are_refused(uid) -> None:
    with pytest.raises(FrameError):
        normalise_uid(uid)

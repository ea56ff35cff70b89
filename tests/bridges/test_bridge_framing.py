"""Serial framing: byte-exact frames, checksums, resync, and a decoder nothing can crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.bridges.framing import (
    Frame,
    FrameDecoder,
    FrameError,
    crc16,
    encode_frame,
    escape_payload,
)

# The worked example of docs/bridge-protocol.md, byte for byte.
EXAMPLE = b'$07,C,{"id":"t-42","command":"accept","order_id":422446,"delay":15}*47E1\r\n'


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1


def test_worked_example() -> None:
    payload = b'{"id":"t-42","command":"accept","order_id":422446,"delay":15}'
    assert encode_frame(7, "C", payload) == EXAMPLE
    assert encode_frame(7, "A") == b"$07,A,*4892\r\n"
    assert FrameDecoder().feed(EXAMPLE) == [Frame(7, "C", payload)]


def test_lowercase_hex_and_bare_newline_are_accepted() -> None:
    frame = EXAMPLE.replace(b"*47E1\r\n", b"*47e1\n")
    assert FrameDecoder().feed(frame)[0] == Frame(7, "C", EXAMPLE[6:-7])


def test_resync_after_junk_partial_and_bad_bytes() -> None:
    decoder = FrameDecoder()
    out = decoder.feed(b'noise\r\n$07,C,{"id\xff' + EXAMPLE[:20] + b"$" + EXAMPLE[1:])
    assert [x.reason for x in out[:2] if isinstance(x, FrameError)] == ["BAD_BYTE", "PARTIAL"]
    assert out[2] == Frame(7, "C", EXAMPLE[6:-7])
    assert decoder.junk == len(b"noise\r\n")


def test_split_anywhere_gives_the_same_frames() -> None:
    stream = EXAMPLE + b"junk" + encode_frame(8, "A") + EXAMPLE
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [f.kind for f in got if isinstance(f, Frame)] == ["C", "A", "C"]


def test_checksum_and_malformed_frames() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(EXAMPLE.replace(b"accept", b"cancel")) == [
        FrameError("CHECKSUM", len(EXAMPLE))
    ]
    for bad in (b"$\r\n", b"$07C{}*0000\r\n", b"$ZZ,C,*0000\r\n", b"$07,C,{}*12\r\n"):
        (result,) = decoder.feed(bad)
        assert isinstance(result, FrameError) and result.reason == "MALFORMED", bad


def test_too_large_frames_are_skipped_without_buffering_them() -> None:
    decoder = FrameDecoder(max_frame=100)
    out = decoder.feed(b"$01,C," + b"x" * 10_000 + b"*0000\r\n" + EXAMPLE)
    assert [type(x).__name__ for x in out] == ["FrameError", "Frame"]
    assert isinstance(out[0], FrameError) and out[0].reason == "TOO_LARGE"
    assert len(decoder._buf) == 0


def test_payload_rules() -> None:
    assert escape_payload(b'{"note":"$5"}') == b'{"note":"\\u00245"}'
    for bad in (b"a$b", b"line\nbreak", b"\xc3\xa9"):
        with pytest.raises(ValueError):
            encode_frame(1, "E", bad)
    with pytest.raises(ValueError):
        encode_frame(256, "E", b"")
    with pytest.raises(ValueError):
        encode_frame(1, "Z", b"")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_arbitrary_bytes_never_crash_the_decoder(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame=128)
    for chunk in chunks:
        for item in decoder.feed(chunk):
            assert isinstance(item, (Frame, FrameError))
            if isinstance(item, Frame):
                assert 0 <= item.seq <= 255 and len(item.payload) <= 128
        assert len(decoder._buf) <= 129


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=100),
    st.integers(0, 255),
    st.sampled_from("ERCHAN"),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="$")),
)
def test_a_frame_after_any_junk_is_recovered(junk: bytes, seq: int, kind: str, text: str) -> None:
    frame = encode_frame(seq, kind, text.encode())
    decoder = FrameDecoder(max_frame=1024)
    # Whatever came before, a newline and a '$' resynchronise the decoder.
    out = decoder.feed(junk + b"\n" + frame)
    assert out[-1] == Frame(seq, kind, text.encode())

"""How streams frame messages: the one-call fast path of strings equals framing each."""

import json

from hypothesis import example, given
from hypothesis import strategies as st

from flasfka.http.stream_framing import NDJSON_FRAMING, SSE_FRAMING

# Strings rich in what JSON escapes or what the fast path splits on.
_texts = st.lists(st.text(alphabet=st.sampled_from('",\\\n\x00a é😀'), max_size=8), max_size=20)


@given(_texts)
@example([","])  # the whole of a string can look like the gap between two
@example([",", "b", ","])
@example(["a\\", ",", 'x","y'])
def test_strings_framed_at_once_equal_strings_framed_one_by_one(texts):
    for framing in (NDJSON_FRAMING, SSE_FRAMING):
        assert framing.frame_texts(texts) == framing.frame(texts)


@given(_texts)
def test_an_ndjson_frame_is_one_json_line_per_string(texts):
    lines = NDJSON_FRAMING.frame_texts(texts).split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line) for line in lines[:-1]] == texts


def test_sse_frames_are_data_events():
    assert SSE_FRAMING.frame_texts(["a", 'b","c']) == b'data: "a"\n\ndata: "b\\",\\"c"\n\n'
    assert SSE_FRAMING.frame_texts([]) == b""
    assert NDJSON_FRAMING.frame([{"base64": "/w=="}, None]) == b'{"base64":"/w=="}\nnull\n'


# Bytes rich in what JSON escapes, in what is not ASCII and in what the joins put between.
_values = st.lists(
    st.one_of(st.none(), st.binary(max_size=6), st.sampled_from([b'"', b"\\", b"\n", b"\x7f"])),
    max_size=20,
)


@given(_values)
@example([b"\xc3", b"\xa9"])  # joined, two invalid values read as one valid character
def test_values_framed_verbatim_equal_their_strings_framed_one_by_one(values):
    for framing in (NDJSON_FRAMING, SSE_FRAMING):
        framed = framing.frame_verbatim(values)
        if framed is not None:
            assert framed == framing.frame([value.decode() for value in values])


@given(
    st.lists(
        st.text(
            alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\')
        ),
        max_size=20,
    )
)
def test_plain_ascii_values_are_framed_verbatim(texts):
    values = [text.encode() for text in texts]
    assert NDJSON_FRAMING.frame_verbatim(values) == NDJSON_FRAMING.frame(texts)
    assert SSE_FRAMING.frame_verbatim(values) == SSE_FRAMING.frame(texts)


def test_values_that_need_more_than_joins_are_left_to_the_other_paths():
    for values in ([None], [b"caf\xc3\xa9"], [b'say "hi"'], [b"a\\b"], [b"line\n"], [b"\xff"]):
        assert NDJSON_FRAMING.frame_verbatim(values) is None

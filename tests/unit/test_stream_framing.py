"""How streams frame messages: the one-call fast path of strings equals framing each."""

import json

from hypothesis import example, given
from hypothesis import strategies as st

from flasfka.http.stream_writer import NDJSON_FRAMING, SSE_FRAMING

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

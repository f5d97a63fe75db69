"""Events and publishing: what Python values become on the wire, and the
errors for values that cannot be sent."""

from __future__ import annotations

import httpx_sse
import pytest

import tidings
from helpers import client


def test_event_fields_are_validated_and_readable() -> None:
    event = tidings.Event("hello\nworld", event="greet", id="7", retry=1500, comment="c")
    assert (event.data, event.event, event.id, event.retry, event.comment) == ("hello\nworld", "greet", "7", 1500, "c")
    assert event.encode() == b": c\nevent: greet\nid: 7\nretry: 1500\ndata: hello\ndata: world\n\n"
    assert event == tidings.Event("hello\nworld", event="greet", id="7", retry=1500, comment="c")
    assert "greet" in repr(event)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("event", {"event": "new\nline"}),
        ("event", {"event": "carriage\rreturn"}),
        ("id", {"id": "a\r\nb"}),
        ("id", {"id": "nul\0id"}),
    ],
)
def test_framing_characters_are_rejected_naming_the_field(field: str, kwargs: dict[str, str]) -> None:
    with pytest.raises(tidings.InvalidEventError, match=f"`{field}`") as caught:
        tidings.Event("x", **kwargs)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, tidings.TidingsError)


def test_data_conversions() -> None:
    assert tidings.Event({"b": [1, 2], "é": "✓"}).data == '{"b":[1,2],"é":"✓"}'
    assert tidings.Event([1, "two"]).data == '[1,"two"]'
    assert tidings.Event("plain".encode()).data == "plain"
    with pytest.raises(ValueError, match="UTF-8"):
        tidings.Event(b"\xff\xfe")
    with pytest.raises(TypeError, match="int"):
        tidings.Event(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="milliseconds"):
        tidings.Event("x", retry=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        tidings.Event("x", retry=-1)
    with pytest.raises(TypeError):
        tidings.Event({"not": {1, 2}})  # a set is not JSON


def test_publish_sends_what_subscribers_receive(server: tidings.Server) -> None:
    channel = server.channel("/c", auto_id=False)
    server.start()
    with client() as http, httpx_sse.connect_sse(http, "GET", f"{server.url}/c") as source:
        assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert channel.publish("text") is None
        assert channel.publish({"home": 1}, event="goal", id="g1", retry=3000) == "g1"
        assert channel.publish(tidings.Event("from an Event", event="e")) is None
        assert channel.publish(b"bytes") is None
        received = []
        for event in source.iter_sse():
            received.append((event.event, event.data, event.id, event.retry))
            if len(received) == 4:
                break
    assert received == [
        ("message", "text", "", None),
        ("goal", '{"home":1}', "g1", 3000),
        ("e", "from an Event", "g1", None),
        ("message", "bytes", "g1", None),
    ]


def test_publish_returns_automatic_ids_and_rejects_bad_input(server: tidings.Server) -> None:
    channel = server.channel("/c")
    first, second = channel.publish("a"), channel.publish("b")
    assert first and second and first != second
    assert first.rsplit("-", 1)[1] == "1" and second.rsplit("-", 1)[1] == "2"
    with pytest.raises(tidings.InvalidEventError, match="`event`"):
        channel.publish("x", event="bad\nname")
    with pytest.raises(ValueError, match="UTF-8"):
        channel.publish(b"\xc3\x28")
    with pytest.raises(TypeError):
        channel.publish(object())  # type: ignore[arg-type]
    with pytest.raises(tidings.ConfigError, match="no other arguments"):
        channel.publish(tidings.Event("x"), event="y")
    assert channel.events_published == 2, "nothing is sent for an invalid event"

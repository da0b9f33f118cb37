"""The extension's body in the official shape: ``/videos/extensions``, the video as a data URI, the added seconds."""

from __future__ import annotations

import json

import pytest

from services.jobs.models import MediaInput
from services.jobs.validation import InputError, parse_extend_seconds
from services.xai.bodies import ExtendRequest, encoded_submission, submission
from tests.mediafactory import make_mp4

CLIP = MediaInput(make_mp4(3.0), "video/mp4", "clip.mp4")


def test_an_extension_sends_the_video_the_seconds_and_the_classic_model() -> None:
    path, body = submission(ExtendRequest(prompt="the kite climbs", duration=4, video=CLIP, user="abc"))
    assert path == "/videos/extensions"
    assert body["model"] == "grok-imagine-video" and body["duration"] == 4 and body["prompt"] == "the kite climbs"
    assert body["video"]["url"].startswith("data:video/mp4;base64,") and body["user"] == "abc"
    assert not {"resolution", "aspect_ratio", "image"} & set(body)


def test_an_empty_prompt_is_left_out_and_the_streamed_body_is_the_same_json() -> None:
    request = ExtendRequest(prompt="", duration=6, video=CLIP)
    path, body = submission(request)
    streamed_path, streamed = encoded_submission(request)
    assert "prompt" not in body and streamed_path == path
    assert json.loads(b"".join(streamed.pieces())) == body and streamed.size == len(json.dumps(body))


def test_the_added_seconds_are_2_to_10_and_6_when_left_out() -> None:
    assert parse_extend_seconds(None) == 6 and parse_extend_seconds(" 3s ") == 3 and parse_extend_seconds("10") == 10
    for wrong, words in (("1", "you asked for 1"), ("11", "you asked for 11"), ("six", "a whole number")):
        with pytest.raises(InputError, match=f"An extension adds 2 to 10 seconds; .*{words}"):
            parse_extend_seconds(wrong)

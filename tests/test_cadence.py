"""When the scheduler polls: soon, then when progress says the video will be ready, backing off without it."""

from __future__ import annotations

from services.xai.cadence import CadenceSettings, PollCadence


def test_first_poll_uses_the_default_until_a_job_has_finished() -> None:
    """With no history the configured first delay is used."""
    assert PollCadence(CadenceSettings(first_poll_s=3)).first_delay() == 3


def test_first_poll_learns_typical_generation_times() -> None:
    """After a few jobs the first poll lands when videos are usually ready."""
    cadence = PollCadence(CadenceSettings(first_poll_s=2, max_interval_s=60), history=[40, 42, 45, 44, 41])
    assert 40 <= cadence.first_delay() <= 45


def test_progress_predicts_the_next_poll() -> None:
    """Half done after 10 s means ready in about 10 s more."""
    delay = PollCadence().next_delay(elapsed_s=10, progress=50, polls_so_far=1)
    assert 10 <= delay <= 11


def test_without_progress_polls_back_off_up_to_the_cap() -> None:
    """No progress reported: 2, 4, 8... seconds, never more than the cap."""
    cadence = PollCadence(CadenceSettings(first_poll_s=2, max_interval_s=30))
    delays = [cadence.next_delay(elapsed_s=5, progress=None, polls_so_far=n) for n in range(6)]
    assert delays == [2, 4, 8, 16, 30, 30]

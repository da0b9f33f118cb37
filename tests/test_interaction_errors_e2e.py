"""No interaction is left thinking: buttons, forms and context menus that fail answer in words, a
database held by another program never keeps a click past Discord's 3 seconds, and the odd cases
(a double click, a form sent after a restart, an input that is gone) each get a true answer.

Failures are injected by replacing one method of the real store or job service with one that raises
(a bug cannot be made to happen on demand); everything else is the real bot against the emulators.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from typing import Any, NoReturn

import pytest

from services.jobs.models import JobStatus
from tests.emulators.discord_emulator import InteractionRecord, MessageRecord
from tests.emulators.xai_emulator import Outcome
from tests.harness import BotRig
from tests.mediafactory import make_image

MODAL, DEFERRED_UPDATE = 9, 6
POLITE = "Something went wrong on my side"


async def _boom(*args: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError("an unexpected bug")


async def _deliver_one(rig: BotRig, **options: Any) -> tuple[MessageRecord, int]:
    await rig.discord.slash("video", {"prompt": "a kite", "duration": 3, **options})
    posted = await rig.delivered_video()
    job = await rig.wait_until_terminal()
    return posted, job.id


async def _answered(rig: BotRig, inter: InteractionRecord, text: str) -> str:
    await rig.discord.wait_for(lambda: text in rig.answer_to(inter), timeout=5)
    return rig.answer_to(inter)


async def test_a_button_whose_handler_raises_gets_a_polite_answer(
    rig: BotRig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Again fails inside: the "thinking" answer becomes a plain apology, and the log says which button and who."""
    emu = rig.discord
    async with rig.running() as bot:
        posted, job_id = await _deliver_one(rig)
        monkeypatch.setattr(bot.runtime.store.jobs, "get", _boom)
        click = await emu.click(posted.id, f"gv:again:{job_id}")
        answer = await _answered(rig, click, POLITE)
    assert "Traceback" not in answer and "RuntimeError" not in answer
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and f"gv:again:{job_id}" in r.getMessage()]
    assert logged and str(emu.user_id) in logged[0].getMessage() and str(emu.guild_id) in logged[0].getMessage()


async def test_a_button_failing_after_its_token_died_answers_in_the_channel(
    rig: BotRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the interaction token is no longer valid, the apology is a channel message mentioning only the clicker."""
    emu = rig.discord
    async with rig.running() as bot:
        posted, job_id = await _deliver_one(rig)
        monkeypatch.setattr(bot.runtime.store.jobs, "get", _boom)
        await emu.click(posted.id, f"gv:again:{job_id}", user_id=emu.other_user_id, created_at=time.time() - 16 * 60)
        note = await emu.wait_for_message(lambda m: m.via == "bot" and POLITE in m.content, timeout=5)
    assert note.channel_id == emu.channel_id and note.mentions == [emu.other_user_id]
    assert not note.mention_everyone and not note.mention_roles


async def test_a_database_lock_is_explained_as_a_busy_database(rig: BotRig, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error that is SQLite's "database is locked" tells the person to try again in a minute, not "a bug"."""

    async def locked(*args: Any, **kwargs: Any) -> NoReturn:
        raise sqlite3.OperationalError("database is locked")

    emu = rig.discord
    async with rig.running() as bot:
        posted, job_id = await _deliver_one(rig)
        monkeypatch.setattr(bot.runtime.store.jobs, "get", locked)
        click = await emu.click(posted.id, f"gv:delete:{job_id}")
        answer = await _answered(rig, click, "database is busy")
    assert "try again in a minute" in answer and not emu.messages[posted.id].deleted


async def test_a_form_whose_submit_raises_gets_a_polite_answer(rig: BotRig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Animate form's submit fails inside: the person is told, not left with a form that thinks forever."""
    emu = rig.discord
    async with rig.running() as bot:
        photo = emu.add_attachment(make_image("PNG"), "sky.png", "image/png")
        source = await emu.user_message("look", attachments=[photo], author_id=emu.other_user_id)
        menu = await emu.message_command("Animate with Grok", source.id)
        await emu.wait_for(lambda: menu.ack_type == MODAL)
        monkeypatch.setattr(bot.runtime.jobs, "accept", _boom)
        submit = await emu.submit_modal(menu, {"prompt": "clouds drifting"})
        await _answered(rig, submit, POLITE)
    assert not rig.xai.requests


async def test_a_context_menu_whose_handler_raises_gets_a_polite_answer(
    rig: BotRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A context menu that fails before answering gets a private apology (through the command tree)."""
    emu = rig.discord
    async with rig.running():
        photo = emu.add_attachment(make_image("PNG"), "sky.png", "image/png")
        source = await emu.user_message("look", attachments=[photo])
        # The module the running bot loaded (discord.py loads extensions afresh on every start).
        monkeypatch.setattr(sys.modules["cogs.menus"], "usable_attachment", lambda *args: _raise())
        menu = await emu.message_command("Animate with Grok", source.id)
        answer = await _answered(rig, menu, POLITE)
    assert menu.ephemeral and "Traceback" not in answer


def _raise() -> NoReturn:
    raise RuntimeError("an unexpected bug")


@pytest.mark.sqlite_only  # locks the SQLite file
async def test_cancel_is_acknowledged_while_another_program_holds_the_database(rig: BotRig) -> None:
    """Cancel answers Discord at once (an update) even while the store is locked; the cancel lands after."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(kind="never"))
    async with rig.running(XAI_MAX_CONCURRENT_JOBS="1") as bot:
        forever = await emu.slash("video", {"prompt": "forever"})
        await rig.wait_for_answer(forever, "Generating")  # first in line: two commands at once may go either way
        waiting = await emu.slash("video", {"prompt": "waiting"})
        await rig.wait_for_answer(waiting, "In line")
        job_id = max(job.id for job in await bot.runtime.store.jobs.of_user(emu.user_id))
        status_id = waiting.original_message_id or 0
        await emu.wait_for(lambda: f"gv:cancel:{job_id}" in emu.messages[status_id].custom_ids)
        holder = sqlite3.connect(rig.database_path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another program takes SQLite's write lock and keeps it
            click = await emu.click(status_id, f"gv:cancel:{job_id}")
            await emu.wait_for(lambda: click.acked or click.ack_rejected is not None, timeout=3.5)
            still = holder.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        text = await rig.wait_for_answer(waiting, "Cancelled")
        final = await rig.job(job_id)
    assert click.ack_type == DEFERRED_UPDATE and not click.ack_rejected
    assert still == JobStatus.QUEUED.value, "acknowledged only after the store write"
    assert "costs nothing" in text and final.status is JobStatus.CANCELLED


async def test_cancel_by_a_stranger_is_refused_privately_and_the_job_goes_on(rig: BotRig) -> None:
    """Someone else's Cancel click gets a private refusal; the job is untouched and its status message too."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(generation_s=1.0))
    async with rig.running() as bot:
        inter = await emu.slash("video", {"prompt": "mine"})
        await rig.wait_for_answer(inter, "Generating")
        job_id = (await bot.runtime.store.jobs.of_user(emu.user_id))[0].id
        status_id = inter.original_message_id or 0
        await emu.wait_for(lambda: f"gv:cancel:{job_id}" in emu.messages[status_id].custom_ids)
        click = await emu.click(status_id, f"gv:cancel:{job_id}", user_id=emu.other_user_id)
        refusal = await emu.wait_for_message(
            lambda m: m.interaction_id == click.id and m.ephemeral and "Only the person" in m.content, timeout=5
        )
        job = await rig.wait_until_terminal(job_id)
    assert click.ack_type == DEFERRED_UPDATE and refusal.content.startswith("Only the person")
    assert job.status is JobStatus.DELIVERED


@pytest.mark.sqlite_only  # locks the SQLite file
async def test_videoadmin_is_acknowledged_while_another_program_holds_the_database(rig: BotRig) -> None:
    """/videoadmin ban answers Discord before it writes the store, so a locked database cannot make it miss 3 s."""
    emu = rig.discord
    async with rig.running() as bot:
        holder = sqlite3.connect(rig.database_path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            ban = await emu.slash(
                "videoadmin", {"member": ("user", emu.other_user_id)}, subcommand="ban", user_id=emu.owner_id
            )
            await emu.wait_for(lambda: ban.acked or ban.ack_rejected is not None, timeout=3.5)
            banned_at_ack = holder.execute("SELECT COUNT(*) FROM guild_bans").fetchone()[0]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        answer = await rig.wait_for_answer(ban, "can no longer make videos")
        banned = await bot.runtime.store.servers.banned_users(emu.guild_id)
    assert ban.ephemeral and not ban.ack_rejected and banned_at_ack == 0
    assert banned == [emu.other_user_id] and f"<@{emu.other_user_id}>" in answer


async def test_a_double_click_on_again_makes_one_video(rig: BotRig) -> None:
    """Two clicks on Again in a row by the same person start one job; the second click is told so."""
    emu = rig.discord
    async with rig.running() as bot:
        posted, job_id = await _deliver_one(rig)
        first = await emu.click(posted.id, f"gv:again:{job_id}")
        second = await emu.click(posted.id, f"gv:again:{job_id}")
        await rig.wait_for_answer(first, "Done")
        await emu.wait_for(lambda: second.acked)
        children = [job for job in await bot.runtime.store.jobs.of_user(emu.user_id) if job.parent_job_id == job_id]
    assert len(children) == 1
    assert "second click" in rig.answer_to(second) and second.ephemeral


async def test_a_double_click_on_cancel_cancels_once_and_says_so(rig: BotRig) -> None:
    """Two clicks on Cancel: one cancel, and the other click is told the job is already (being) cancelled.

    The two clicks are handled at once, so either may be the one that cancels (seen both ways)."""
    emu = rig.discord
    rig.xai.outcomes.append(Outcome(kind="never"))
    async with rig.running(XAI_MAX_CONCURRENT_JOBS="1") as bot:
        forever = await emu.slash("video", {"prompt": "forever"})
        await rig.wait_for_answer(forever, "Generating")  # first in line: two commands at once may go either way
        waiting = await emu.slash("video", {"prompt": "waiting"})
        await rig.wait_for_answer(waiting, "In line")
        job_id = max(job.id for job in await bot.runtime.store.jobs.of_user(emu.user_id))
        status_id = waiting.original_message_id or 0
        await emu.wait_for(lambda: f"gv:cancel:{job_id}" in emu.messages[status_id].custom_ids)
        first = await emu.click(status_id, f"gv:cancel:{job_id}")
        second = await emu.click(status_id, f"gv:cancel:{job_id}")
        text = await rig.wait_for_answer(waiting, "Cancelled")
        clicks = {first.id, second.id}
        note = await emu.wait_for_message(lambda m: m.interaction_id in clicks and m.ephemeral, timeout=20)
    assert first.acked and second.acked and "costs nothing" in text
    assert "already" in note.content and "finished" not in note.content
    notes = [m for m in emu.world.messages.values() if m.interaction_id in clicks and m.ephemeral]
    assert len(notes) == 1  # one click cancelled, the other was told: never two notes, never none


async def test_again_on_a_job_whose_input_is_gone_says_so(rig: BotRig) -> None:
    """Again on an animated image whose stored image is gone: a clear answer, and nothing sent to xAI."""
    emu = rig.discord
    async with rig.running():
        picture = emu.add_attachment(make_image("PNG"), "sky.png", "image/png")
        posted, job_id = await _deliver_one(rig, image=picture)
        assert rig.bot is not None
        await rig.bot.runtime.store.database.execute("DELETE FROM job_inputs WHERE job_id = ?", (job_id,))
        sent = len(rig.xai.requests)
        click = await emu.click(posted.id, f"gv:again:{job_id}")
        answer = await _answered(rig, click, "no longer have the image")
    assert "/video" in answer and len(rig.xai.requests) == sent


async def test_an_edit_form_sent_after_a_restart_still_makes_the_edit(rig: BotRig) -> None:
    """The Edit form was opened, the bot restarted, then the form was sent: the edit is made all the same."""
    emu = rig.discord
    async with rig.running():
        posted, job_id = await _deliver_one(rig)
        click = await emu.click(posted.id, f"gv:edit:{job_id}")
        await emu.wait_for(lambda: click.ack_type == MODAL)
    async with rig.running():
        submit = await emu.submit_modal(click, {"prompt": "add fireworks"})
        edited = await rig.wait_for_job(lambda j: j.parent_job_id == job_id and j.status.is_terminal, timeout=10)
    assert submit.acked and edited.mode.value == "edit" and edited.prompt == "add fireworks"
    assert edited.status is JobStatus.DELIVERED


async def test_an_animate_form_sent_after_a_restart_reads_the_message_again(rig: BotRig) -> None:
    """A context-menu form that outlived the bot's memory finds its message's image and uses the form's answers."""
    emu = rig.discord
    async with rig.running():
        photo = emu.add_attachment(make_image("PNG"), "sky.png", "image/png")
        source = await emu.user_message("look", attachments=[photo], author_id=emu.other_user_id)
        menu = await emu.message_command("Animate with Grok", source.id)
        await emu.wait_for(lambda: menu.ack_type == MODAL)
    async with rig.running():
        await emu.submit_modal(menu, {"prompt": "clouds drifting", "duration": "4"})
        posted = await rig.delivered_video(timeout=10)
        job = await rig.wait_until_terminal()
    assert job.origin.source_message_id == source.id and job.prompt == "clouds drifting"
    assert posted.message_reference and int(posted.message_reference["message_id"]) == source.id
    body = rig.xai.requests[0].body
    assert body["duration"] == 4 and "aspect_ratio" not in body  # an image's own shape wins


async def test_a_form_for_a_message_deleted_meanwhile_says_so(rig: BotRig) -> None:
    """The message was deleted while its form was open (and the bot restarted): a clear answer, no job."""
    emu = rig.discord
    async with rig.running():
        photo = emu.add_attachment(make_image("PNG"), "sky.png", "image/png")
        source = await emu.user_message("look", attachments=[photo], author_id=emu.other_user_id)
        menu = await emu.message_command("Animate with Grok", source.id)
        await emu.wait_for(lambda: menu.ack_type == MODAL)
    emu.delete_message(source.id)
    async with rig.running() as bot:
        submit = await emu.submit_modal(menu, {"prompt": "clouds drifting"})
        answer = await _answered(rig, submit, "❌")
        jobs = await bot.runtime.store.jobs.of_user(emu.user_id)
    assert "deleted" in answer and not jobs and not rig.xai.requests

"""Lineage end to end: every follow-up records the job it came from, and its result says "from #N" with a link to
the parent's message (Again, Edit, Extend, and a context menu used on one of the bot's results)."""

from __future__ import annotations

from services.jobs.models import JobStatus, Mode
from tests.emulators.discord_emulator import MessageRecord
from tests.harness import BotRig
from tests.mediafactory import make_mp4
from tests.test_extend_e2e import MODAL, delivered, extend, first_video


def jump(rig: BotRig, message: MessageRecord) -> str:
    return f"https://discord.com/channels/{rig.discord.guild_id}/{message.channel_id}/{message.id}"


async def test_again_edit_extend_and_the_context_menu_each_say_where_they_came_from(rig: BotRig) -> None:
    rig.xai.output_video = make_mp4(3.0)
    emu = rig.discord
    async with rig.running():
        posted, first = await first_video(rig, "a red kite")
        assert "from #" not in posted.content  # a first video comes from nothing

        again = await emu.click(posted.id, f"gv:again:{first.id}")
        await rig.wait_for_answer(again, "Done")
        again_message, again_job = await delivered(rig, (await rig.latest_job()).id)

        edit = await emu.click(posted.id, f"gv:edit:{first.id}")
        await emu.wait_for(lambda: edit.ack_type == MODAL)
        await rig.wait_for_answer(await emu.submit_modal(edit, {"prompt": "make it night"}), "Done")
        edit_message, edit_job = await delivered(rig, (await rig.latest_job()).id)

        extension = await extend(rig, posted, first.id, {"seconds": "2", "prompt": ""})
        await rig.wait_for_answer(extension, "Done")
        extend_message, extend_job = await delivered(rig, (await rig.latest_job()).id)

        menu = await emu.message_command("Edit video with Grok", again_message.id)
        await emu.wait_for(lambda: menu.ack_type == MODAL)
        await rig.wait_for_answer(await emu.submit_modal(menu, {"prompt": "in watercolour"}), "Done")
        menu_message, menu_job = await delivered(rig, (await rig.latest_job()).id)
    assert [j.parent_job_id for j in (again_job, edit_job, extend_job)] == [first.id] * 3
    assert (again_job.mode, edit_job.mode, extend_job.mode) == (Mode.TEXT, Mode.EDIT, Mode.EXTEND)
    for message in (again_message, edit_message, extend_message):
        assert f"from [#{first.id}](<{jump(rig, posted)}>)" in message.content
    assert menu_job.parent_job_id == again_job.id and menu_job.status is JobStatus.DELIVERED
    assert f"from [#{again_job.id}](<{jump(rig, again_message)}>)" in menu_message.content
    # The link names a message; it pings nobody but the requester, as every result does.
    assert all(m.content.count("<@") == 1 for m in (again_message, edit_message, extend_message, menu_message))


async def test_a_parent_whose_message_was_deleted_is_named_without_a_link(rig: BotRig) -> None:
    rig.xai.output_video = make_mp4(3.0)
    emu = rig.discord
    async with rig.running():
        posted, first = await first_video(rig, "a paper boat")
        again = await emu.click(posted.id, f"gv:again:{first.id}")
        deleted = await emu.click(posted.id, f"gv:delete:{first.id}")
        await rig.wait_for_answer(deleted, "Deleted")
        await rig.wait_for_answer(again, "Done")
        again_message, again_job = await delivered(rig, (await rig.latest_job()).id)
    assert again_job.parent_job_id == first.id
    assert f"from #{first.id}" in again_message.content and "discord.com/channels" not in again_message.content


async def test_the_context_menu_on_a_message_that_is_not_a_result_records_no_parent(rig: BotRig) -> None:
    emu = rig.discord
    async with rig.running():
        clip = emu.add_attachment(make_mp4(2.0), "mine.mp4", "video/mp4")
        source = await emu.user_message("look at this", attachments=[clip])
        menu = await emu.message_command("Edit video with Grok", source.id)
        await emu.wait_for(lambda: menu.ack_type == MODAL)
        await rig.wait_for_answer(await emu.submit_modal(menu, {"prompt": "slower"}), "Done")
        message, job = await delivered(rig, (await rig.latest_job()).id)
    assert job.parent_job_id is None and "from #" not in message.content

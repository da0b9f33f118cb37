"""Self-tests of the loopback Discord emulator: a throwaway bot (tests/discord_demo_bot.py) on the real
discord.py 2.7 client proves it speaks discord.py's protocol and enforces Discord's rules, for what the real
bot uses (the emulator leaves out the rest: autocomplete, selects, Components V2, member chunks, RESUME)."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest

from tests.discord_demo_bot import MP4, DemoBot, RegenButton, last_error, text_channel
from tests.emulators.discord_emulator import DiscordEmulator, run_client
from tests.emulators.discord_models import (
    ATTACH_FILES,
    DEFAULT_BOT_PERMISSIONS,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    MIB,
    SEND_MESSAGES_IN_THREADS,
)


@pytest.fixture
async def emu() -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator() as emulator:
        yield emulator


# --- tests ------------------------------------------------------------------------------------------
async def test_login_gateway_and_guild_sync(emu: DiscordEmulator) -> None:
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        assert bot.user is not None and bot.user.id == emu.bot_user_id
        assert bot.application_id == emu.application_id
        guild = bot.get_guild(emu.guild_id)
        assert guild is not None and guild.member_count == 4  # bot, owner, alice, bob
        assert guild.get_member(emu.user_id) is None  # without the members intent, as on Discord
        assert guild.filesize_limit == emu.guild_filesize_limit(emu.guild_id) == 10 * MIB
        perms = text_channel(bot, emu.channel_id).permissions_for(guild.me)
        assert perms.attach_files and perms.send_messages and not perms.manage_messages
        synced = {c["name"]: c for c in emu.commands[emu.guild_id]}
        video = synced["render"]["options"][0]
        assert (video["name"], video["type"], video["required"]) == ("video", 11, True)
        assert synced["Animate"]["type"] == 3 and synced["Animate"]["description"] == ""
        identify = next(e for e in emu.gateway_log if e["event"] == "identify")
        assert identify["intents"] == discord.Intents.default().value
        assert all(r.authorized for r in emu.requests if r.path.startswith("/api/v10/users"))
    assert [e["by"] for e in emu.gateway_log if e["event"] == "close"] == ["client"]
    assert not emu.problems


async def test_slash_with_attachment_defer_edit_and_mp4_followup(emu: DiscordEmulator) -> None:
    source = emu.add_attachment(b"source-clip-bytes", "in.mp4")
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        inter = await emu.slash("render", {"video": source, "title": "Cats"})
        await emu.wait_for(lambda: len(inter.followup_message_ids) == 1)
        assert inter.ack_type == 5 and inter.ack_latency_s is not None and inter.ack_latency_s < 1
        original = emu.messages[inter.original_message_id or 0]
        assert [v.content for v in original.versions] == ["", "got 17 bytes"]
        assert original.versions[0].flags & FLAG_LOADING and not original.loading
        followup = emu.messages[inter.followup_message_ids[0]]
        assert followup.via == "followup" and followup.content == "done: Cats"
        out = followup.attachment("out.mp4")
        assert out.data == MP4 and out.content_type == "video/mp4"
        assert followup.components[0]["components"][0]["custom_id"] == "demo:regen:job1"
        upload = next(r for r in emu.requests if r.files)
        assert upload.files[0].field == "files[0]" and upload.files[0].data == MP4
        assert any(r.route == "/attachments/{attachment_id}/{filename}" and r.status == 200 for r in emu.requests)
        # The first follow-up after a defer resolves the thinking message instead of posting a new one.
        echo = await emu.slash("echo", {"text": "hello", "private": True})
        await emu.wait_for(lambda: bool(echo.followup_message_ids))
        resolved = emu.messages[echo.followup_message_ids[0]]
        assert resolved.id == echo.original_message_id and resolved.content == "hello"
        assert resolved.flags & FLAG_EPHEMERAL and not resolved.loading
    assert not emu.problems


async def test_channel_send_with_file_reply_and_allowed_mentions(emu: DiscordEmulator) -> None:
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        asked = await emu.user_message(f"hi <@{emu.bot_user_id}>")
        await emu.wait_for(lambda: len(bot.seen) == 1)
        channel = text_channel(bot, emu.channel_id)
        sent = await channel.send(
            f"here <@{emu.user_id}>",
            file=discord.File(io.BytesIO(MP4), "out.mp4"),
            reference=bot.seen[0],
            allowed_mentions=discord.AllowedMentions.none(),
        )
        record = emu.messages[sent.id]
        assert record.via == "bot" and record.type == 19
        assert record.message_reference is not None and record.message_reference["message_id"] == str(asked.id)
        assert record.allowed_mentions == {"parse": []}  # as sent: nobody is pinged, not even the replied user
        assert record.mentions == [] and record.attachment("out.mp4").data == MP4
        # Discord's nonce dedupe returns the first message.
        first = await channel.send("once", nonce=424242)
        again = await channel.send("once", nonce=424242)
        assert first.id == again.id and first.nonce == "424242"
        # A reply to a missing message: fail_if_not_exists=False posts normally, otherwise 400 / 50035.
        gone = channel.get_partial_message(emu.mint_snowflake())
        plain = await channel.send("orphan", reference=gone.to_reference(fail_if_not_exists=False))
        assert emu.messages[plain.id].message_reference is None
        with pytest.raises(discord.HTTPException) as missing:
            await channel.send("orphan", reference=gone)
        assert missing.value.status == 400 and missing.value.code == 50035
        # Content, embed and empty-message rules.
        for kwargs, code in (
            ({"content": "x" * 2001}, 50035),
            ({"embed": discord.Embed(title="t" * 257)}, 50035),
            ({"content": "   "}, 50006),
        ):
            with pytest.raises(discord.HTTPException) as bad:
                await channel.send(**kwargs)
            assert bad.value.code == code, kwargs
        # Edits keep the listed attachments; deleting makes later fetches 404 / 10008.
        edited = await sent.edit(content="edited", attachments=[])
        assert edited.attachments == [] and [v.content for v in record.versions][-1] == "edited"
        await sent.delete()
        with pytest.raises(discord.NotFound) as unknown:
            await channel.fetch_message(sent.id)
        assert unknown.value.code == 10008 and record.deleted
        human = await channel.fetch_message(asked.id)
        with pytest.raises(discord.Forbidden) as forbidden:
            await human.delete()
        assert forbidden.value.code == 50013
    assert not emu.problems


async def test_context_menu_modal_submit(emu: DiscordEmulator) -> None:
    clip = emu.add_attachment(b"clip", "clip.mp4")
    bot = DemoBot(emu.guild_id)  # no message content intent: the context-menu target is exempt
    async with run_client(bot, emu):
        target = await emu.user_message("look at this", attachments=[clip])
        opened = await emu.message_command("Animate", target.id)
        await emu.wait_for(lambda: opened.modal is not None)
        assert opened.ack_type == 9 and opened.modal is not None
        assert [c["type"] for c in opened.modal["components"]] == [1, 1]
        submitted = await emu.submit_modal(opened, {"prompt": "make it move", "style": "noir"})
        reply = await emu.wait_for_message(lambda m: m.interaction_id == submitted.id)
        assert reply.content == "prompt=make it move style=noir files=1" and reply.ephemeral
        assert submitted.ack_type == 4 and submitted.source_interaction_id == opened.id
        with pytest.raises(ValueError, match="no inputs"):
            await emu.submit_modal(opened, {"nope": "x", "prompt": "p"})
    assert not emu.problems


async def test_button_click_on_earlier_message(emu: DiscordEmulator) -> None:
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        view = discord.ui.View(timeout=None)
        view.add_item(RegenButton("abc"))
        posted = await text_channel(bot, emu.channel_id).send("result", view=view)
        click = await emu.click(posted.id, "demo:regen:abc", user_id=emu.other_user_id)
        await emu.wait_for(lambda: bool(click.followup_message_ids))
        assert click.ack_type == 7 and click.original_message_id == posted.id
        record = emu.messages[posted.id]
        assert record.content == "regenerating abc" and record.components == []
        followup = emu.messages[click.followup_message_ids[0]]
        assert followup.content == "queued abc" and followup.ephemeral
        with pytest.raises(ValueError, match="no component"):
            await emu.click(posted.id, "demo:regen:abc")  # the edit removed the button
    assert not emu.problems


async def test_dm_send_and_closed_dms(emu: DiscordEmulator) -> None:
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        alice = await bot.fetch_user(emu.user_id)
        sent = await alice.send("your video is ready")
        assert emu.messages[sent.id].channel_id == emu.dm_channel(emu.user_id)
        emu.close_dms(emu.other_user_id)
        bob = await bot.fetch_user(emu.other_user_id)
        with pytest.raises(discord.Forbidden) as closed:
            await bob.send("hello?")
        assert closed.value.code == 50007
    assert not emu.problems


async def test_upload_limits_413_and_boosted_guild(emu: DiscordEmulator) -> None:
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        channel = text_channel(bot, emu.channel_id)
        too_big = b"\0" * (10 * MIB + 1)
        with pytest.raises(discord.HTTPException) as big:
            await channel.send(file=discord.File(io.BytesIO(too_big), "big.mp4"))
        assert big.value.status == 413 and big.value.code == 40005
        # A tier-2 guild added while the bot runs: GUILD_CREATE reaches it and 50 MiB applies.
        boosted = emu.add_guild("Boosted", premium_tier=2)
        room = emu.add_channel(boosted, "renders")
        await emu.wait_for(lambda: bot.get_channel(room) is not None)
        ok = await text_channel(bot, room).send(file=discord.File(io.BytesIO(too_big), "big.mp4"))
        assert emu.messages[ok.id].attachments[0].size == len(too_big)
        # Interactions use their own attachment_size_limit.
        inter = await emu.slash("upload", {"size": 2048}, attachment_size_limit=1024)
        await emu.wait_for(lambda: bool(bot.errors))
        assert last_error(bot).status == 413 and inter.followup_message_ids == []
    assert not emu.problems


async def test_missing_attach_files_is_403_for_posts_and_followups(emu: DiscordEmulator) -> None:
    no_files = emu.add_channel(emu.guild_id, "no-files", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~ATTACH_FILES)
    source = emu.add_attachment(b"src", "in.mp4")
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        channel = text_channel(bot, no_files)
        assert not channel.permissions_for(channel.guild.me).attach_files
        await channel.send("text is fine")
        with pytest.raises(discord.Forbidden) as denied:
            await channel.send(file=discord.File(io.BytesIO(b"x"), "x.mp4"))
        assert denied.value.code == 50013
        inter = await emu.slash("render", {"video": source}, channel_id=no_files)
        await emu.wait_for(lambda: bool(bot.errors))
        assert last_error(bot).code == 50013 and inter.app_permissions & ATTACH_FILES == 0
    assert not emu.problems


async def test_expired_token_is_401_50027(emu: DiscordEmulator) -> None:
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        inter = await emu.slash("echo", {"text": "late"}, created_at=time.time() - 16 * 60)
        await emu.wait_for(lambda: bool(bot.errors))
        err = last_error(bot)
        assert err.status == 401 and err.code == 50027
        assert inter.ack_type == 5 and inter.followup_message_ids == []
    assert not emu.problems


async def test_late_ack_is_10062_and_double_ack_40060() -> None:
    async with DiscordEmulator(ack_deadline_s=0.2) as emu:
        bot = DemoBot(emu.guild_id)
        async with run_client(bot, emu):
            late = await emu.slash("slow", {"seconds": 0.35})
            await emu.wait_for(lambda: bool(bot.errors))
            assert isinstance(last_error(bot), discord.NotFound) and last_error(bot).code == 10062
            assert late.ack_type is None and late.ack_rejected is not None and late.ack_latency_s is not None
            assert late.ack_latency_s > 0.2
            emu.delay_next("POST", r"/interactions/\d+/[^/]+/callback$", 0.25)  # a slow network, same verdict
            delayed = await emu.slash("slow", {"seconds": 0.0})
            await emu.wait_for(lambda: delayed.ack_rejected is not None)
            quick = await emu.slash("slow", {"seconds": 0.0})
            await emu.wait_for(lambda: quick.ack_type == 5)
            url = f"{emu.api_base_url}/interactions/{quick.id}/{quick.token}/callback"
            async with aiohttp.ClientSession() as session, session.post(url, json={"type": 5}) as again:
                assert again.status == 400 and (await again.json())["code"] == 40060
                assert again.headers["Content-Type"] == "application/json"
            assert quick.duplicate_acks == [5]
        assert not emu.problems


async def test_original_before_callback_is_10015(emu: DiscordEmulator) -> None:
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        view = discord.ui.View(timeout=None)
        view.add_item(discord.ui.Button(label="inert", custom_id="inert"))  # its callback never responds
        posted = await text_channel(bot, emu.channel_id).send("x", view=view)
        inter = await emu.click(posted.id, "inert")
        webhook = discord.Webhook.partial(emu.application_id, inter.token, client=bot)
        with pytest.raises(discord.NotFound) as early:
            await webhook.edit_message(posted.id, content="too early")
        assert early.value.code == 10015
    assert not emu.problems


async def test_message_content_intent_stripping() -> None:
    async with DiscordEmulator() as emu:
        clip = emu.add_attachment(b"clip", "clip.mp4")
        without = DemoBot(emu.guild_id, message_content=False)
        async with run_client(without, emu):
            someone = await emu.user_message("plain", attachments=[clip], author_id=emu.other_user_id)
            await emu.user_message(f"<@{emu.bot_user_id}> animate that", reply_to=someone.id)
            await emu.user_message("psst", channel_id=emu.dm_channel(emu.user_id))
            await emu.wait_for(lambda: len(without.seen) == 3)
            plain, mention, dm = without.seen
            assert plain.content == "" and plain.attachments == []
            assert mention.content.endswith("animate that") and mention.reference is not None
            referenced = mention.reference.resolved
            assert isinstance(referenced, discord.Message) and referenced.attachments == []
            assert dm.content == "psst"
            fetched = await text_channel(without, emu.channel_id).fetch_message(someone.id)
            assert fetched.content == "plain"  # REST follows the app's setting, which allows the intent
        with_intent = DemoBot(emu.guild_id, message_content=True)
        async with run_client(with_intent, emu):
            await emu.user_message("plain again", attachments=[clip], reply_to=someone.id)
            await emu.wait_for(lambda: len(with_intent.seen) == 1)
            seen = with_intent.seen[0]
            assert seen.content == "plain again" and len(seen.attachments) == 1
            assert seen.reference is not None and isinstance(seen.reference.resolved, discord.Message)
            assert len(seen.reference.resolved.attachments) == 1
        assert not emu.problems

    async with DiscordEmulator(message_content_intent_allowed=False) as strict:
        with pytest.raises(discord.ConnectionClosed) as refused:
            async with run_client(DemoBot(strict.guild_id, message_content=True), strict):
                pass
        assert refused.value.code == 4014
        plain_bot = DemoBot(strict.guild_id)
        async with run_client(plain_bot, strict):
            hidden = await strict.user_message("secret")
            fetched = await text_channel(plain_bot, strict.channel_id).fetch_message(hidden.id)
            assert fetched.content == ""  # REST strips too when the app lacks the intent
        assert not strict.problems


async def test_bot_managed_role_is_self_role_and_its_mention_is_a_role_mention(emu: DiscordEmulator) -> None:
    """add_bot_role makes the role discord.py calls guild.self_role; `<@&id>` of it lands in role_mentions."""
    bot = DemoBot(emu.guild_id, message_content=True)
    async with run_client(bot, emu):
        role_id = emu.add_bot_role(emu.guild_id, "Grok Video")
        await emu.wait_for(lambda: (g := bot.get_guild(emu.guild_id)) is not None and g.self_role is not None)
        guild = bot.get_guild(emu.guild_id)
        assert guild is not None and guild.self_role is not None
        assert guild.self_role.id == role_id and guild.self_role.is_bot_managed()
        someone = await emu.user_message("a clip", author_id=emu.other_user_id)
        await emu.user_message(f"<@&{role_id}> make it snow", reply_to=someone.id, ping_reply=False)
        await emu.wait_for(lambda: len(bot.seen) == 2)
        asked = bot.seen[1]
        assert [r.id for r in asked.role_mentions] == [role_id] and not asked.mentions
    assert not emu.problems


async def test_threads_subcommands_and_members(emu: DiscordEmulator) -> None:
    thread = emu.add_channel(emu.guild_id, "clips", thread_parent_id=emu.channel_id)
    role = emu.add_role(emu.guild_id, "artists")
    bot = DemoBot(emu.guild_id, members=True)
    async with run_client(bot, emu):
        guild = bot.get_guild(emu.guild_id)
        assert guild is not None and len(guild.members) == guild.member_count == 4
        in_thread = guild.get_thread(thread)
        assert in_thread is not None
        posted = await in_thread.send("in a thread")
        assert emu.messages_in(thread)[-1].id == posted.id
        emu.set_bot_permissions(thread, DEFAULT_BOT_PERMISSIONS & ~SEND_MESSAGES_IN_THREADS)
        with pytest.raises(discord.Forbidden):
            await in_thread.send("not any more")
        options = {"who": ("user", emu.user_id), "where": ("channel", emu.channel_id), "role": ("role", role)}
        configured = await emu.slash("admin", options, subcommand="set")
        reply = await emu.wait_for_message(lambda m: m.interaction_id == configured.id)
        assert reply.content == f"{emu.user_id} {emu.channel_id} {role}"
    assert not emu.problems


async def test_a_restart_identifies_afresh_and_a_resume_is_refused(emu: DiscordEmulator) -> None:
    first = DemoBot(emu.guild_id)
    async with run_client(first, emu):
        before = await emu.slash("echo", {"text": "one"})
        await emu.wait_for(lambda: bool(before.followup_message_ids))
    second = DemoBot(emu.guild_id)
    async with run_client(second, emu):
        after = await emu.slash("echo", {"text": "two"})
        await emu.wait_for(lambda: bool(after.followup_message_ids))
        old = await text_channel(second, emu.channel_id).fetch_message(before.original_message_id or 0)
        assert old.content == "one"
    async with aiohttp.ClientSession() as session, session.ws_connect(emu.gateway_url) as ws:
        hello = await ws.receive_json()
        await ws.send_json({"op": 6, "d": {"token": emu.bot_token, "session_id": "gone", "seq": 3}})
        refused = await ws.receive_json()
    assert hello["op"] == 10 and (refused["op"], refused["d"]) == (9, False)
    identifies = [e for e in emu.gateway_log if e["event"] == "identify"]
    await emu.wait_for(lambda: sum(1 for e in emu.gateway_log if e["event"] == "close") == 3)
    assert len(identifies) == 2 and {e["by"] for e in emu.gateway_log if e["event"] == "close"} == {"client"}
    assert not emu.problems


async def test_fail_next_429_is_retried(emu: DiscordEmulator) -> None:
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        emu.fail_next("POST", r"/channels/\d+/messages$", 429, retry_after=0.01)
        sent = await text_channel(bot, emu.channel_id).send("after a 429")
        posts = emu.requests_matching("POST", r"/channels/\d+/messages$")
        assert [r.status for r in posts] == [429, 200] and posts[0].injected
        assert emu.messages[sent.id].content == "after a 429"
        emu.fail_next("POST", r"/webhooks/", 429, retry_after=0.01)
        inter = await emu.slash("echo", {"text": "webhook retried"})
        await emu.wait_for(lambda: bool(inter.followup_message_ids))
        emu.fail_next("GET", r"/users/\d+$", 404, code=10013, message="Unknown User")
        with pytest.raises(discord.NotFound):
            await bot.fetch_user(emu.user_id)
    assert not emu.problems


async def test_unknown_route_and_bad_driver_input_are_loud(emu: DiscordEmulator) -> None:
    bot = DemoBot(emu.guild_id)
    async with run_client(bot, emu):
        with pytest.raises(discord.NotFound):
            await bot.http.request(discord.http.Route("GET", "/voice/regions"))
        assert emu.problems and "unimplemented route" in emu.problems[0]
        emu.problems.clear()
        with pytest.raises(LookupError):
            await emu.slash("nope")
        with pytest.raises(ValueError, match="expects str"):
            await emu.slash("echo", {"text": 5})
        with pytest.raises(ValueError, match="required"):
            await emu.slash("render", {})
    assert not emu.problems

"""``/usage`` with more models, members and blocked prompts than one embed field holds: whole lines, and a count
of the ones left out, within Discord's embed limits (1024 per field value, 6000 in all)."""

from __future__ import annotations

from services.jobs.models import Mode
from tests.harness import BotRig
from tests.test_limits_e2e import reply, text_of
from tests.test_usage_e2e import HOUR, MANAGE_SERVER, Past, seed

MODELS = 40


async def test_many_models_are_shown_in_whole_lines_with_a_count_of_the_rest(rig: BotRig) -> None:
    emu = rig.discord
    emu.set_user_permissions(emu.guild_id, emu.user_id, MANAGE_SERVER)
    await seed(
        rig, [Past(emu.user_id, Mode.TEXT, 6, "delivered", HOUR, cents=10 + n, seconds=6.0) for n in range(MODELS)]
    )
    blocked = "a prompt that moderation did not like, long enough to be cut at eighty characters " * 2
    await seed(
        rig, [Past(emu.other_user_id, Mode.TEXT, 6, "moderated", HOUR, cents=0, prompt=blocked) for _ in range(12)]
    )
    async with await rig.open_store() as store:  # every job on a model of its own, with a long (admin-chosen) name
        for n in range(MODELS):
            await store.database.execute(
                "UPDATE jobs SET model = ? WHERE id = ?", (f"grok-imagine-video-experimental-build-{n:02d}", n + 1)
            )
    async with rig.running():
        answer = await reply(rig, await emu.slash("usage", {"period": "7d"}))
    embed = answer.embeds[0]
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    per_model = fields["Spend per model"].splitlines()
    assert all(len(value) <= 1024 for value in fields.values())
    assert len(text_of(answer)) - len(answer.content) <= 6000
    prices = tuple(f"${c / 100:.2f}" for c in range(0, 10 + MODELS))
    assert len(per_model) > 10 and all(line.endswith(prices) for line in per_model[:-1])  # no line cut short
    assert per_model[-1] == f"…and {MODELS + 1 - len(per_model[:-1])} more models (see the CSV)"  # + the classic
    assert "`grok-imagine-video-experimental-build-39`" in per_model[0]  # dearest first
    blocked_lines = fields["Blocked by moderation (12)"].splitlines()
    assert blocked_lines[-1].startswith("…and ") and blocked_lines[-1].endswith(" more (see the CSV)")
    listed = len(blocked_lines) - 1
    assert blocked_lines[-1] == f"…and {12 - listed} more (see the CSV)"
    assert all(line.startswith("#") and line.endswith("…") for line in blocked_lines[:-1])

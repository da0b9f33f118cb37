"""The models as data: prices in ticks (the reference's worked examples), what each model refuses and what it
says would work, the settings that choose and price them, and which model a request is routed to."""

from __future__ import annotations

from pathlib import Path

import pytest

from cogs.extending import extension_options
from services.config import ConfigError, load_settings
from services.jobs.attribution import Attribution, user_tag
from services.jobs.models import Job, JobRequest, JobStatus, Mode, Origin, VideoOptions
from services.policy.guild_policy import GuildPolicy, PolicyError, apply_overrides, default_policy
from services.policy.limits import Limit, Refused, usd
from services.policy.model_choice import choose_model
from services.store.store import Store
from services.xai.catalog import (
    BUILT_IN,
    CLASSIC,
    DEFAULT_OFFER,
    LITE,
    V15,
    CatalogError,
    build_catalog,
    check_request,
    parse_prices,
)

BASE = {"XAI_API_KEY": "xai-secret-123", "DISCORD_TOKEN": "discord-secret-456"}
CATALOG = build_catalog(DEFAULT_OFFER, {})


@pytest.mark.parametrize(
    ("mode", "seconds", "resolution", "classic", "v15", "lite"),
    [  # xai-api-facts.md, "Worked examples" (dollars)
        (Mode.TEXT, 6, "480p", "$0.30", "$0.48", "$0.12"),
        (Mode.IMAGE, 6, "480p", "$0.302", "$0.49", "$0.13"),
        (Mode.TEXT, 10, "720p", "$0.70", "$1.40", "$0.30"),
        (Mode.IMAGE, 15, "720p", "$1.052", "$2.11", "$0.46"),
    ],
)
def test_prices_follow_the_worked_examples(
    mode: Mode, seconds: int, resolution: str, classic: str, v15: str, lite: str
) -> None:
    prices = [usd(CATALOG.price_ticks(name, mode, seconds, resolution)) for name in (CLASSIC, V15, LITE)]
    assert prices == [classic, v15, lite]


def test_1080p_is_priced_where_offered_and_money_stays_whole_ticks() -> None:
    assert CATALOG.price_ticks(V15, Mode.TEXT, 10, "1080p") == 25_000_000_000  # $2.50
    assert CATALOG.price_ticks(LITE, Mode.TEXT, 10, "1080p") == 14_000_000_000  # $1.40 (an upscale of 720p)
    # An edit keeps its input's resolution (not recorded): priced at the dearest edits allow, 9 s at 720p.
    assert CATALOG.price_ticks(CLASSIC, Mode.EDIT, None, None) == 9 * 700_000_000
    # A job stored before models were (None), or of a model no longer offered: priced as built in / classic.
    assert CATALOG.price_ticks(None, Mode.TEXT, 6, "480p") == 3_000_000_000
    assert build_catalog([LITE], {}).price_ticks(V15, Mode.TEXT, 1, "480p") == 800_000_000


def test_each_refusal_says_what_would_work() -> None:
    lite, classic = BUILT_IN[LITE], BUILT_IN[CLASSIC]
    assert check_request(lite, Mode.EXTEND, None) == (
        "grok-imagine-video-1.5-lite cannot make extensions; extensions run on grok-imagine-video."
    )
    assert check_request(classic, Mode.TEXT, "1080p") == (
        "1080p is not offered for text-to-video on grok-imagine-video; it offers 480p or 720p. "
        "1080p runs on grok-imagine-video-1.5 or grok-imagine-video-1.5-lite."
    )
    assert check_request(classic, Mode.EDIT, "1080p") == (
        "1080p is not offered for edits on grok-imagine-video; it offers 480p or 720p."
    )
    assert check_request(BUILT_IN[V15], Mode.IMAGE, "1080p") is None


def _request(mode: Mode = Mode.TEXT, model: str | None = None, resolution: str | None = None) -> JobRequest:
    return JobRequest(mode, "x", VideoOptions(duration=6, resolution=resolution), Origin(1, 2, 3), model=model)


def test_edits_and_extensions_go_to_the_classic_model_whatever_was_chosen() -> None:
    policy = GuildPolicy(catalog=CATALOG)
    assert choose_model(policy, _request()).model == LITE  # the first offered is the default
    assert choose_model(policy, _request(model=V15, resolution="1080p")).model == V15
    assert choose_model(policy, _request(Mode.EDIT, model=LITE)).model == CLASSIC
    assert choose_model(policy, _request(Mode.EXTEND)).model == CLASSIC
    server = GuildPolicy(catalog=CATALOG, default_model=V15)
    assert choose_model(server, _request()).model == V15


def test_a_server_that_does_not_allow_a_model_refuses_it_in_words() -> None:
    only_lite = GuildPolicy(catalog=CATALOG, allowed_models=frozenset({LITE}))
    with pytest.raises(Refused) as refused:
        choose_model(only_lite, _request(model=V15))
    assert refused.value.refusal.limit is Limit.MODEL
    assert (
        str(refused.value)
        == "grok-imagine-video-1.5 is not offered in this server; choose one of grok-imagine-video-1.5-lite."
    )
    with pytest.raises(Refused) as edit:
        choose_model(only_lite, _request(Mode.EDIT))
    assert "Edits run only on grok-imagine-video, which this server does not allow" in str(edit.value)
    with pytest.raises(Refused) as unknown:
        choose_model(only_lite, _request(model="grok-imagine-video-9"))
    assert "is not offered here" in str(unknown.value)
    with pytest.raises(Refused, match="1080p is not offered for text-to-video on grok-imagine-video"):
        choose_model(GuildPolicy(catalog=CATALOG), _request(model=CLASSIC, resolution="1080p"))


def test_a_servers_models_are_checked_and_a_model_no_longer_offered_falls_out() -> None:
    base = default_policy(load_settings(BASE).limits)
    with pytest.raises(PolicyError, match="default model must be one of the allowed"):
        apply_overrides(base, {"default_model": V15, "allowed_models": [LITE]})
    narrowed = build_catalog([LITE, CLASSIC], {})
    kept = apply_overrides(GuildPolicy(catalog=narrowed), {"default_model": V15, "allowed_models": [V15, LITE]})
    assert kept.default_model is None and kept.allowed_models == frozenset({LITE})
    # A server kept to models the bot no longer offers stays kept, to the bot's default, never opened to all.
    dearer = build_catalog([CLASSIC, V15], {})
    still = apply_overrides(GuildPolicy(catalog=dearer), {"allowed_models": [LITE]})
    assert still.allowed_models == frozenset({CLASSIC}) and not still.allows_model(V15)


def test_models_and_prices_are_settings() -> None:
    catalog = load_settings({**BASE, "XAI_MODELS": f"{V15},{CLASSIC}"}).limits.catalog
    assert catalog.names == (V15, CLASSIC) and catalog.default.name == V15
    priced = load_settings({**BASE, "XAI_PRICES": f"{V15}:720p=0.15,1080p=0.27"}).limits.catalog
    assert priced.spec(V15).ticks_per_second == {"480p": 800_000_000, "720p": 1_500_000_000, "1080p": 2_700_000_000}
    # XAI_MODEL still names the default (moved first); the old classic prices still price the classic model.
    old = load_settings({**BASE, "XAI_MODEL": CLASSIC, "XAI_USD_PER_SECOND_720P": "0.08"}).limits.catalog
    assert old.default.name == CLASSIC and old.spec(CLASSIC).ticks_per_second["720p"] == 800_000_000
    new = load_settings(
        {
            **BASE,
            "XAI_MODELS": f"{LITE},grok-imagine-video-2",
            "XAI_PRICES": "grok-imagine-video-2:480p=0.04,image=0.01,modes=text+image",
        }
    ).limits.catalog
    assert new.spec("grok-imagine-video-2").modes == frozenset({Mode.TEXT, Mode.IMAGE})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"XAI_MODELS": "grok-imagine-video-2"}, "XAI_MODELS names grok-imagine-video-2, which the bot does not know"),
        ({"XAI_MODELS": " , "}, "XAI_MODELS is empty"),
        ({"XAI_PRICES": "grok-imagine-video-1.5:720p"}, "XAI_PRICES entry 'grok-imagine-video-1.5:720p' is not valid"),
        (
            {"XAI_PRICES": "grok-imagine-video-1.5:720p=free"},
            "XAI_PRICES grok-imagine-video-1.5:720p='free' is not valid",
        ),
        ({"XAI_PRICES": "grok-imagine-video-1.5:4k=1"}, "the keys are 480p, 720p, 1080p, image, modes"),
        ({"XAI_MODELS": LITE, "XAI_PRICES": f"{V15}:480p=0.1"}, "which XAI_MODELS does not offer"),
        ({"XAI_MODELS": LITE, "XAI_MODEL": CLASSIC}, "XAI_MODEL='grok-imagine-video' is not one of XAI_MODELS"),
        # A careless admin: a price that rounds to nothing, a model or a key priced twice, an unknown XAI_MODEL.
        ({"XAI_PRICES": f"{V15}:720p=1e-12"}, f"XAI_PRICES {V15}:720p='1e-12' is not valid"),
        ({"XAI_PRICES": f"{V15}:720p=0.1;{V15}:1080p=0.2"}, f"XAI_PRICES prices {V15} twice: put its prices in one"),
        ({"XAI_PRICES": f"{V15}:720p=0.1,720p=0.2"}, f"XAI_PRICES gives {V15}:720p twice: keep one"),
        ({"XAI_MODEL": "grok-imagine-video-9"}, "XAI_MODEL names grok-imagine-video-9, which the bot does not know"),
    ],
)
def test_a_bad_models_setting_stops_start_up_with_one_clear_line(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, **values})
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_parse_prices_reads_several_entries() -> None:
    assert parse_prices(f"{V15}:720p=0.15; {LITE}:image=0.02 ;") == {V15: {"720p": "0.15"}, LITE: {"image": "0.02"}}
    with pytest.raises(CatalogError):
        parse_prices("no-colon=1")


async def test_the_user_is_a_salted_hash_kept_across_restarts_and_never_the_id(
    tmp_path: Path, store_url: str | None
) -> None:
    member = Origin(guild_id=1, channel_id=2, user_id=123456789012345678)
    async with await Store.open(tmp_path / "bot.sqlite3", url=store_url) as store:
        first = await Attribution(store.kv).user_of(member)
    async with await Store.open(tmp_path / "bot.sqlite3", url=store_url) as store:  # a restart: the salt is read back
        kv = store.kv
        again = await Attribution(kv).user_of(member)
        assert first == again and first is not None and len(first) == 32
        assert "123456789012345678" not in first and first != user_tag("other salt", 123456789012345678)
        assert await Attribution(kv).user_of(Origin(kind="cli")) is None  # terminal jobs send no user


@pytest.mark.parametrize(
    ("mode", "resolution", "ticks"),
    [(Mode.EDIT, None, 6 * 700_000_000), (Mode.TEXT, None, 6 * 500_000_000), (Mode.TEXT, "1080p", 6 * 700_000_000)],
)
def test_an_extension_is_never_priced_below_its_clips_resolution(
    mode: Mode, resolution: str | None, ticks: int
) -> None:
    """xAI extends a clip at the clip's own resolution. An edit's result keeps its input's, which is not
    recorded: extending it is priced at the dearest the classic model makes (720p), like the edit itself; a
    video made with no resolution chosen was xAI's 480p; a 1080p one is extended at the classic model's 720p."""
    origin = Origin(guild_id=1, channel_id=2, user_id=3)
    clip = Job(1, mode, "p", VideoOptions(resolution=resolution), origin, JobStatus.DELIVERED, 0.0, 0.0)
    options = extension_options(clip, 6)
    assert CATALOG.price_ticks(CLASSIC, Mode.EXTEND, options.duration, options.resolution) == ticks


def test_an_extension_of_a_file_of_unknown_resolution_is_priced_at_the_dearest() -> None:
    assert CATALOG.price_ticks(CLASSIC, Mode.EXTEND, 6, None) == 6 * 700_000_000  # the terminal's --extend FILE


def test_a_servers_default_resolution_does_not_refuse_an_extension() -> None:
    """A server whose default is 1080p: an extension (of an edit, whose resolution is not known) is not given
    that default, which the classic model would refuse; its resolution is its clip's."""
    from services.policy.limits import screen

    policy = GuildPolicy(catalog=CATALOG, default_resolution="1080p", default_duration=4)
    screened = screen(policy, _request(Mode.EXTEND), banned=False, parent_channel_id=None)
    assert screened.options == VideoOptions(duration=6, resolution=None)
    assert choose_model(policy, screened).model == CLASSIC


def test_a_servers_default_resolution_a_model_does_not_offer_is_its_best_not_a_refusal() -> None:
    """A moderator set 1080p as the server's default; a member picks the classic model (720p at most) without
    asking for a resolution: they get its 720p, not a refusal about a 1080p they never asked for. Asked for
    outright, 1080p on the classic model is still refused, saying what would work."""
    from services.policy.limits import screen

    policy = GuildPolicy(catalog=CATALOG, default_resolution="1080p")
    asked = _request(model=CLASSIC)
    defaulted = choose_model(policy, screen(policy, asked, banned=False, parent_channel_id=None), asked)
    assert (defaulted.model, defaulted.options.resolution) == (CLASSIC, "720p")
    lite = _request(model=LITE)
    assert choose_model(policy, screen(policy, lite, banned=False, parent_channel_id=None), lite).options == (
        VideoOptions(duration=6, resolution="1080p")
    )
    outright = _request(model=CLASSIC, resolution="1080p")
    with pytest.raises(Refused, match="1080p is not offered"):
        choose_model(policy, outright, outright)

"""What each xAI video model can do and what it costs, as data: the one table every check and price reads.

Built in for the three models of late 2026 (prices from xai-api-facts.md, checked ``PRICES_CHECKED``); the
settings choose which are offered (``XAI_MODELS``) and may change prices or describe a new model
(``XAI_PRICES``, parsed by ``parse_prices``), so a price change needs no release. Money is in ticks
(1 USD = 10,000,000,000), as xAI reports it; dollars are for display only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from services.jobs.models import DEFAULT_DURATION_S, USD_TICKS_PER_DOLLAR, Mode

CLASSIC = "grok-imagine-video"  # the only model that edits and extends
V15 = "grok-imagine-video-1.5"
LITE = "grok-imagine-video-1.5-lite"
PRICES_CHECKED = "2026-10-05 (grok-imagine-video, grok-imagine-video-1.5) and 2026-10-08 (grok-imagine-video-1.5-lite)"
DEFAULT_OFFER = (LITE, V15, CLASSIC)  # the first is the default model
EDIT_ESTIMATE_S = 9  # an edit's length follows its input (at most 8.7 s): priced as 9 s until xAI says
# An extension's duration is the added seconds only; no source says whether the input clip is billed.
MODE_WORDS = {Mode.TEXT: "text-to-video", Mode.IMAGE: "image-to-video", Mode.EDIT: "edits", Mode.EXTEND: "extensions"}
_ALL_MODES = frozenset(Mode)
_NEW_MODES = frozenset({Mode.TEXT, Mode.IMAGE})


def usd_to_ticks(usd: float) -> int:
    return round(usd * USD_TICKS_PER_DOLLAR)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: the modes it makes and its prices.

    ``ticks_per_second`` is keyed by resolution; a resolution with no price is not offered at all (the classic
    model, the only one that edits and extends, has no 1080p price)."""

    name: str
    modes: frozenset[Mode]
    ticks_per_second: Mapping[str, int]
    image_fee_ticks: int

    def resolutions_for(self, mode: Mode) -> tuple[str, ...]:
        return tuple(self.ticks_per_second) if mode in self.modes else ()

    def price_ticks(self, mode: Mode, duration: int | None, resolution: str | None) -> int:
        """What a video should cost: output seconds at the resolution's rate, plus the input image's fee.

        No resolution given means xAI's 480p, except for an edit or an extension, which keeps its input's (not
        known): it is priced at the dearest resolution the mode allows, so it is never counted for less than it
        costs."""
        seconds = duration or (EDIT_ESTIMATE_S if mode is Mode.EDIT else DEFAULT_DURATION_S)
        rates = self.ticks_per_second
        if resolution not in rates:
            keeps_input = mode in (Mode.EDIT, Mode.EXTEND)
            resolution = max(self.resolutions_for(mode) or rates, key=rates.__getitem__) if keeps_input else "480p"
        rate = rates.get(resolution or "", max(rates.values()))
        return seconds * rate + (self.image_fee_ticks if mode is Mode.IMAGE else 0)


# Ticks per second of output (xai-api-facts.md, "Prices"): classic $0.05 / $0.07, 1.5 $0.08 / $0.14 / $0.25,
# lite $0.02 / $0.03 / $0.14 (its 1080p is an upscale of 720p, but a resolution it offers); then the image fee.
BUILT_IN: dict[str, ModelSpec] = {
    CLASSIC: ModelSpec(CLASSIC, _ALL_MODES, {"480p": 500_000_000, "720p": 700_000_000}, 20_000_000),
    V15: ModelSpec(V15, _NEW_MODES, {"480p": 800_000_000, "720p": 1_400_000_000, "1080p": 2_500_000_000}, 100_000_000),
    LITE: ModelSpec(LITE, _NEW_MODES, {"480p": 200_000_000, "720p": 300_000_000, "1080p": 1_400_000_000}, 100_000_000),
}


@dataclass(frozen=True, slots=True)
class Catalog:
    """The offered models, in offer order (the first is the default)."""

    models: tuple[ModelSpec, ...]

    @property
    def default(self) -> ModelSpec:
        return self.models[0]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.models)

    def get(self, name: str | None) -> ModelSpec | None:
        return next((spec for spec in self.models if spec.name == name), None)

    def spec(self, name: str | None) -> ModelSpec:
        """A job's model for pricing: a model no longer offered is priced as built in, an unknown (or an old job
        with none recorded, sent before models were stored) as the classic model it then went to."""
        return self.get(name) or BUILT_IN.get(name or CLASSIC) or BUILT_IN[CLASSIC]

    def price_ticks(self, model: str | None, mode: Mode, duration: int | None, resolution: str | None) -> int:
        return self.spec(model).price_ticks(mode, duration, resolution)


def check_request(spec: ModelSpec, mode: Mode, resolution: str | None) -> str | None:
    """None when ``spec`` can make this, else one sentence saying why not and what would work."""
    if mode not in spec.modes:
        return f"{spec.name} cannot make {MODE_WORDS[mode]}; {MODE_WORDS[mode]} run on {CLASSIC}."
    offered = spec.resolutions_for(mode)
    if resolution is not None and resolution not in offered:
        return f"{resolution} is not offered for {MODE_WORDS[mode]} on {spec.name}; it offers {_either(offered)}." + (
            f" 1080p runs on {V15} or {LITE}." if resolution == "1080p" and mode in _NEW_MODES else ""
        )
    return None


def _either(items: Iterable[str]) -> str:
    names = list(items)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class CatalogError(ValueError):
    """A models or prices setting that cannot be used; the text names it and says what it should be."""


PRICES_HELP = (
    "entries separated by ';', each MODEL:RES=USD,...[,image=USD][,modes=text+image] in dollars per second, "
    "like grok-imagine-video-1.5:720p=0.15,1080p=0.27"
)


def parse_prices(raw: str | None) -> dict[str, dict[str, str]]:
    """``XAI_PRICES`` as {model: {key: value}}; keys are resolutions, ``image`` and ``modes``."""
    entries: dict[str, dict[str, str]] = {}
    for entry in (raw or "").split(";"):
        if not entry.strip():
            continue
        name, sep, rest = entry.partition(":")
        pairs = [pair.partition("=") for pair in rest.split(",") if pair.strip()]
        if not sep or not name.strip() or not pairs or any(not eq or not v.strip() for _, eq, v in pairs):
            raise CatalogError(f"XAI_PRICES entry {entry.strip()!r} is not valid: it should be {PRICES_HELP}")
        name, keys = name.strip(), [key.strip().lower() for key, _, _ in pairs]
        if name in entries:
            raise CatalogError(f"XAI_PRICES prices {name} twice: put its prices in one entry")
        twice = next((key for key in keys if keys.count(key) > 1), None)
        if twice is not None:
            raise CatalogError(f"XAI_PRICES gives {name}:{twice} twice: keep one")
        entries[name] = {key: value.strip().lower() for key, (_, _, value) in zip(keys, pairs, strict=True)}
    return entries


def _usd(name: str, key: str, value: str) -> int:
    try:
        usd = float(value)
    except ValueError:
        usd = -1.0
    if not 0 < usd < 100 or usd_to_ticks(usd) == 0:  # a price that rounds to no ticks would make it free
        raise CatalogError(f"XAI_PRICES {name}:{key}={value!r} is not valid: it should be US dollars, more than 0")
    return usd_to_ticks(usd)


def _modes(name: str, value: str) -> frozenset[Mode]:
    try:
        return frozenset(Mode(word) for word in value.split("+"))
    except ValueError:
        words = "+".join(mode.value for mode in Mode)
        raise CatalogError(f"XAI_PRICES {name}:modes={value!r} is not valid: it should be some of {words}") from None


def _with_override(name: str, base: ModelSpec | None, override: Mapping[str, str]) -> ModelSpec:
    prices = dict(base.ticks_per_second) if base else {}
    fee = base.image_fee_ticks if base else None
    modes = base.modes if base else None
    for key, value in override.items():
        if key == "image":
            fee = _usd(name, key, value)
        elif key == "modes":
            modes = _modes(name, value)
        elif key in ("480p", "720p", "1080p"):
            prices[key] = _usd(name, key, value)
        else:
            raise CatalogError(f"XAI_PRICES {name}:{key} is not valid: the keys are 480p, 720p, 1080p, image, modes")
    if base is None and (modes is None or fee is None or not prices):
        raise CatalogError(
            f"XAI_MODELS names {name}, which the bot does not know: describe it in XAI_PRICES with its prices, "
            f"image fee and modes, like {name}:480p=0.05,720p=0.07,image=0.01,modes=text+image"
        )
    assert modes is not None and fee is not None
    if base is not None:
        return replace(base, ticks_per_second=prices, image_fee_ticks=fee, modes=modes)
    return ModelSpec(name, modes, prices, fee)


def build_catalog(names: Iterable[str], prices: Mapping[str, Mapping[str, str]]) -> Catalog:
    """The offered models in order, each built in or described by ``prices``, with its price changes applied."""
    offered = [name for name in dict.fromkeys(n.strip() for n in names) if name]
    if not offered:
        raise CatalogError(
            f"XAI_MODELS is empty: it should name models separated by commas, like {','.join(DEFAULT_OFFER)}"
        )
    stray = sorted(set(prices) - set(offered))
    if stray:
        raise CatalogError(
            f"XAI_PRICES prices {', '.join(stray)}, which XAI_MODELS does not offer: add it there or remove it"
        )
    return Catalog(tuple(_with_override(name, BUILT_IN.get(name), prices.get(name, {})) for name in offered))

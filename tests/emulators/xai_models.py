"""The models the xAI emulator knows, what each may do and what each costs, as xAI answered in late 2026.

Written out here on purpose, not read from services/xai/catalog.py: the emulator stands for xAI, so the bot's
own table is checked against it rather than agreeing with itself. Refusals are a 400 on the POST, as xAI gives
for an edit or extension on the 1.5 models, a resolution a model does not offer, or a model it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EmulatedModel:
    ticks_per_second: dict[str, int]
    image_fee_ticks: int
    edits: bool  # edits and extensions


MODELS: dict[str, EmulatedModel] = {
    "grok-imagine-video": EmulatedModel({"480p": 500_000_000, "720p": 700_000_000}, 20_000_000, edits=True),
    "grok-imagine-video-1.5": EmulatedModel(
        {"480p": 800_000_000, "720p": 1_400_000_000, "1080p": 2_500_000_000}, 100_000_000, edits=False
    ),
    "grok-imagine-video-1.5-lite": EmulatedModel(
        {"480p": 200_000_000, "720p": 300_000_000, "1080p": 1_400_000_000}, 100_000_000, edits=False
    ),
}
MODELS["grok-imagine-video-1.5-preview"] = MODELS["grok-imagine-video-1.5"]  # an alias now


def model_problem(path: str, body: dict[str, Any]) -> str | None:
    """Why xAI would refuse this model for this request (a 400), or None."""
    name = body.get("model")
    model = MODELS.get(str(name))
    if model is None:
        return f"Model {name!r} not found or your team does not have access to it."
    if path.endswith(("/edits", "/extensions")):
        what = "editing" if path.endswith("/edits") else "extension"
        return None if model.edits else f"Video {what} is not supported for model {name}."
    resolution = body.get("resolution") or "480p"
    if resolution not in model.ticks_per_second:
        return f"Resolution {resolution} is not supported for model {name}."
    return None


def price_ticks(path: str, body: dict[str, Any], duration: Any) -> int:
    """``usage.cost_in_usd_ticks`` for a finished job: output seconds at its model's rate, plus the image fee.
    An edit or extension is billed at 480p for its output seconds (the emulator's input clips are 480p)."""
    model = MODELS.get(str(body.get("model"))) or MODELS["grok-imagine-video"]
    resolution = body.get("resolution") or "480p"
    rate = model.ticks_per_second.get(resolution, model.ticks_per_second["480p"])
    seconds = body.get("duration") if path.endswith("/generations") else duration
    fee = model.image_fee_ticks if body.get("image") else 0
    return round(float(seconds or 8) * rate) + fee

"""REST requests and answers as the emulator's routes see them, and Discord's rules for what a request may hold.

The REST side applies these before it accepts a message, a command list or a modal: content, embed and
component limits, allowed mentions, snowflake and integer fields. A body the real discord.py would never
send is ``malformed``: answered 400 and recorded as a problem of the bot (or of the emulator).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

if TYPE_CHECKING:
    from .discord_models import FileRecord, RequestRecord


class ApiError(Exception):
    """A Discord error answer. `problem` (if set) is also recorded in `DiscordEmulator.problems`."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        problem: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.problem = problem

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            out["errors"] = self.errors
        return out


def invalid_form(path: Sequence[str | int], code: str, message: str, *, problem: str | None = None) -> ApiError:
    """400 / 50035 "Invalid Form Body" with Discord's nested `errors` shape for one field."""
    inner: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(list(path)):
        inner = {str(key): inner}
    return ApiError(400, 50035, "Invalid Form Body", errors=inner, problem=problem)


def malformed(path: Sequence[str | int], message: str) -> ApiError:
    """A body the real discord.py would never send: answered 400 and recorded as a problem."""
    where = ".".join(str(p) for p in path) or "<body>"
    return invalid_form(path, "MODEL_TYPE_CONVERT", message, problem=f"malformed request body at {where}: {message}")


@dataclass
class Reply:
    status: int
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ApiRequest:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: CIMultiDict[str]
    json: Any
    files: list[FileRecord]
    record: RequestRecord

    def body(self) -> dict[str, Any]:
        if self.json is None:
            return {}
        if not isinstance(self.json, dict):
            raise malformed([], f"expected a JSON object, got {type(self.json).__name__}")
        return self.json


def truthy(value: str | None) -> bool:
    """A query flag as Discord reads it (``?wait=true``, ``?with_counts=1``)."""
    return value is not None and value.lower() in ("1", "true")


# --- mentions --------------------------------------------------------------------------------------
_USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
_ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")


def parse_mentions(content: str) -> tuple[list[int], list[int], bool]:
    """User ids, role ids and whether @everyone/@here appear in `content`, in order of appearance."""
    users = list(dict.fromkeys(int(m) for m in _USER_MENTION.findall(content)))
    roles = list(dict.fromkeys(int(m) for m in _ROLE_MENTION.findall(content)))
    everyone = "@everyone" in content or "@here" in content
    return users, roles, everyone


def validate_allowed_mentions(allowed: Any) -> None:
    if allowed is None:
        return
    if not isinstance(allowed, dict):
        raise malformed(["allowed_mentions"], "must be an object")
    parse = allowed.get("parse", [])
    if not isinstance(parse, list) or any(p not in ("users", "roles", "everyone") for p in parse):
        raise invalid_form(["allowed_mentions", "parse"], "BASE_TYPE_CHOICES", f"Invalid parse values {parse!r}.")
    for kind in ("users", "roles"):
        explicit = allowed.get(kind)
        if explicit is not None and kind in parse:
            raise invalid_form(
                ["allowed_mentions", kind],
                "SET_TYPE_ALREADY_CONTAINS_VALUE",
                f'parse:["{kind}"] and {kind}: [ids] are mutually exclusive.',
            )
        if explicit is not None and len(explicit) > 100:
            raise invalid_form(["allowed_mentions", kind], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")


def effective_mentions(
    content: str,
    allowed: dict[str, Any] | None,
    *,
    default_parse: Sequence[str],
    replied_author: int | None,
) -> tuple[list[int], list[int], bool]:
    """Which users / roles / everyone a message really pings, applying `allowed_mentions` as Discord does."""
    users, roles, everyone = parse_mentions(content)
    if allowed is None:
        parse: Sequence[str] = default_parse
        allowed_users: list[int] | None = None
        allowed_roles: list[int] | None = None
        ping_reply = True
    else:
        parse = allowed.get("parse", [])
        allowed_users = [int(u) for u in allowed["users"]] if allowed.get("users") is not None else None
        allowed_roles = [int(r) for r in allowed["roles"]] if allowed.get("roles") is not None else None
        ping_reply = bool(allowed.get("replied_user", False))
    out_users = [u for u in users if "users" in parse or (allowed_users is not None and u in allowed_users)]
    out_roles = [r for r in roles if "roles" in parse or (allowed_roles is not None and r in allowed_roles)]
    if replied_author is not None and ping_reply and replied_author not in out_users:
        out_users.append(replied_author)
    return out_users, out_roles, everyone and "everyone" in parse


# --- content / embed / component validation --------------------------------------------------------
EMBED_LIMITS: dict[str, int] = {"title": 256, "description": 4096}


def validate_content(content: Any) -> str:
    if content is None:
        return ""
    if not isinstance(content, str):
        raise malformed(["content"], f"content must be a string, got {type(content).__name__}")
    if len(content) > 2000:
        raise invalid_form(["content"], "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    return content


def validate_embeds(embeds: Any) -> list[dict[str, Any]]:
    """Checks Discord's embed limits (title 256, description 4096, fields, 6000 in total, at most 10)."""
    if embeds is None:
        return []
    if not isinstance(embeds, list) or not all(isinstance(e, dict) for e in embeds):
        raise malformed(["embeds"], "embeds must be a list of objects")
    if len(embeds) > 10:
        raise invalid_form(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    out: list[dict[str, Any]] = []
    for i, embed in enumerate(embeds):
        for key, limit in EMBED_LIMITS.items():
            value = embed.get(key)
            if value is not None and len(str(value)) > limit:
                raise invalid_form(["embeds", i, key], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
            total += len(str(value or ""))
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise invalid_form(["embeds", i, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for j, fld in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                value = str(fld.get(key) or "")
                if not value:
                    raise invalid_form(["embeds", i, "fields", j, key], "BASE_TYPE_REQUIRED", "This field is required")
                if len(value) > limit:
                    raise invalid_form(
                        ["embeds", i, "fields", j, key], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                    )
                total += len(value)
        for key, sub, limit in (("footer", "text", 2048), ("author", "name", 256)):
            part = embed.get(key)
            if isinstance(part, dict):
                value = str(part.get(sub) or "")
                if len(value) > limit:
                    raise invalid_form(
                        ["embeds", i, key, sub], "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                    )
                total += len(value)
        # Bots cannot set these; Discord drops them.
        cleaned = {k: v for k, v in embed.items() if k not in ("video", "provider")}
        cleaned["type"] = "rich"
        out.append(cleaned)
    if total > 6000:
        raise invalid_form(["embeds"], "MESSAGE_EMBEDS_TOO_LONG", "Embed size exceeds maximum size of 6000")
    return out


def iter_components(components: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every component in a tree (action rows and what they hold), depth first."""
    out: list[dict[str, Any]] = []
    for comp in components:
        out.append(comp)
        out.extend(iter_components(list(comp.get("components") or [])))
    return out


def validate_components(components: Any) -> list[dict[str, Any]]:
    """At most 5 action rows of at most 5 buttons (the bot sends no Components V2 layouts)."""
    if components is None:
        return []
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise malformed(["components"], "components must be a list of objects")
    every = iter_components(components)
    if len(components) > 5:
        raise invalid_form(["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    for i, row in enumerate(components):
        if row.get("type") != 1:
            raise invalid_form(
                ["components", i, "type"], "UNION_TYPE_CHOICES", "Top-level components must be action rows."
            )
        if not 1 <= len(row.get("components") or []) <= 5:
            raise invalid_form(["components", i, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5.")
    seen: set[str] = set()
    for comp in every:
        custom_id = comp.get("custom_id")
        if custom_id is not None:
            if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
                raise invalid_form(["components"], "BASE_TYPE_BAD_LENGTH", f"custom_id {custom_id!r}: 1-100 chars")
            if custom_id in seen:
                raise invalid_form(
                    ["components"], "COMPONENT_CUSTOM_ID_DUPLICATED", f"Component custom id {custom_id!r} duplicated"
                )
            seen.add(custom_id)
        if comp.get("type") == 2:
            label = comp.get("label")
            if label is not None and len(str(label)) > 80:
                raise invalid_form(["components"], "BASE_TYPE_MAX_LENGTH", "Button label: 80 or fewer.")
            if comp.get("style") == 5 and not comp.get("url"):
                raise invalid_form(["components"], "BUTTON_URL_REQUIRED", "Link buttons need a url.")
            if comp.get("style") not in (5, 6) and custom_id is None:
                raise invalid_form(["components"], "BUTTON_CUSTOM_ID_REQUIRED", "Buttons need a custom_id.")
    return components


def find_component(components: Sequence[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for comp in iter_components(components):
        if comp.get("custom_id") == custom_id:
            return comp
    return None


# --- request-field and definition validation ---------------------------------------------------
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


def parse_snowflake(raw: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise invalid_form([], "NUMBER_TYPE_COERCE", f"Value {raw!r} is not snowflake.") from None


def int_field(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise malformed([key], f"{key} must be an integer")
    return value


def validate_command(i: int, cmd: dict[str, Any], ctype: int) -> None:
    name = cmd.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        raise invalid_form([i, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
    if ctype == 1:
        if not _COMMAND_NAME.match(name) or name != name.lower():
            raise invalid_form([i, "name"], "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}")
        desc = cmd.get("description")
        if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
            raise invalid_form([i, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        validate_options([i, "options"], cmd.get("options") or [])
    elif ctype in (2, 3):
        if cmd.get("description"):
            raise invalid_form([i, "description"], "CONTEXT_MENU_DESCRIPTION", "Context menus have no description.")
        if cmd.get("options"):
            raise invalid_form([i, "options"], "CONTEXT_MENU_OPTIONS", "Context menus take no options.")
    else:
        raise invalid_form([i, "type"], "BASE_TYPE_CHOICES", f"Unknown command type {ctype}.")


def validate_options(path: list[str | int], options: Any) -> None:
    if not isinstance(options, list):
        raise malformed(path, "options must be a list")
    if len(options) > 25:
        raise invalid_form(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    names: set[str] = set()
    for j, opt in enumerate(options):
        where = [*path, j]
        otype = opt.get("type")
        name = opt.get("name")
        if otype not in range(1, 12):
            raise invalid_form([*where, "type"], "BASE_TYPE_CHOICES", f"Unknown option type {otype!r}.")
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            raise invalid_form(
                [*where, "name"], "APPLICATION_COMMAND_INVALID_NAME", f"Option name is invalid: {name!r}"
            )
        if name in names:
            raise invalid_form([*where, "name"], "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Duplicate name")
        names.add(name)
        desc = opt.get("description")
        if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
            raise invalid_form([*where, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if otype in (1, 2):
            validate_options([*where, "options"], opt.get("options") or [])
            continue
        if opt.get("required"):
            if seen_optional:
                raise invalid_form(
                    [*where, "required"],
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        if len(opt.get("choices") or []) > 25:
            raise invalid_form([*where, "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")


def validate_modal(data: dict[str, Any]) -> None:
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        raise invalid_form(["data", "custom_id"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 45:
        raise invalid_form(["data", "title"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")
    components = data.get("components")
    if not isinstance(components, list) or not 1 <= len(components) <= 5:
        raise invalid_form(["data", "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
    for comp in iter_components(components):
        if comp.get("type") == 4:
            label = comp.get("label")
            if label is not None and len(str(label)) > 45:
                raise invalid_form(["data", "components"], "BASE_TYPE_MAX_LENGTH", "Text input label: 45 or fewer.")
            if int(comp.get("max_length") or 0) > 4000:
                raise invalid_form(["data", "components"], "BASE_TYPE_MAX", "max_length: 4000 or less.")


def parse_json(raw: bytes) -> Any:
    """A request body's JSON; one that does not parse is Discord's 50109 (and a problem: discord.py never sends it)."""
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(
            400, 50109, "The request body contains invalid JSON.", problem=f"invalid JSON body {raw[:120]!r}"
        ) from None

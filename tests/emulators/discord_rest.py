"""The emulator's REST side: routing, body parsing, Discord's rules and error codes for every route.

Every answer is JSON with `Content-Type: application/json` exactly (anything else makes discord.py treat the
body as text), never a 5xx (discord.py retries those for ~25 s) and never carries rate-limit headers unless a
test injected a 429 with `DiscordEmulator.fail_next`.
"""

from __future__ import annotations

import json
import re
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict

from .discord_messages import MessageWriter
from .discord_models import (
    ATTACH_FILES,
    EMBED_LINKS,
    FLAG_EPHEMERAL,
    FLAG_IS_COMPONENTS_V2,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMPONENT,
    INTERACTION_MODAL_SUBMIT,
    MANAGE_MESSAGES,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    VIEW_CHANNEL,
    ApiError,
    ChannelState,
    FileRecord,
    InteractionRecord,
    MessageRecord,
    RequestRecord,
    has_permission,
    int_field,
    invalid_form,
    malformed,
    parse_snowflake,
    snowflake_time,
    validate_command,
    validate_modal,
)

if TYPE_CHECKING:
    from .discord_emulator import DiscordEmulator

API_PREFIX = "/api/v10"
NONCE_WINDOW_S = 300.0


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


Handler = Callable[[ApiRequest], Awaitable[Reply]]


@dataclass
class Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    auth: bool


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


class RestApi:
    """All REST routes of the emulator. State lives on the emulator; this class holds only the logic."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.world = emulator.world
        self.writer = MessageWriter(emulator)
        self._command_ids: dict[tuple[str, int, str], int] = {}
        self._nonces: dict[tuple[int, int, str], tuple[int, float]] = {}
        self.routes: list[Route] = []
        r = self._route
        r("GET", "/gateway", self.get_gateway, auth=False)
        r("GET", "/gateway/bot", self.get_gateway_bot)
        r("GET", "/users/@me", self.get_me)
        r("GET", "/users/@me/guilds", self.get_my_guilds)
        r("POST", "/users/@me/channels", self.create_dm)
        r("GET", "/users/{user_id}", self.get_user)
        r("GET", "/oauth2/applications/@me", self.get_application)
        r("GET", "/applications/@me", self.get_application)
        r("PUT", "/applications/{app_id}/commands", self.put_commands)
        r("GET", "/applications/{app_id}/commands", self.get_commands)
        r("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self.put_commands)
        r("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self.get_commands)
        r("POST", "/interactions/{interaction_id}/{token}/callback", self.interaction_callback, auth=False)
        r("POST", "/webhooks/{app_id}/{token}", self.webhook_execute, auth=False)
        r("GET", "/webhooks/{app_id}/{token}/messages/{message_id}", self.webhook_get_message, auth=False)
        r("PATCH", "/webhooks/{app_id}/{token}/messages/{message_id}", self.webhook_edit_message, auth=False)
        r("DELETE", "/webhooks/{app_id}/{token}/messages/{message_id}", self.webhook_delete_message, auth=False)
        r("GET", "/channels/{channel_id}", self.get_channel)
        r("GET", "/channels/{channel_id}/messages", self.get_messages)
        r("POST", "/channels/{channel_id}/messages", self.post_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        r("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self.add_reaction)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self.remove_reaction)
        r("POST", "/channels/{channel_id}/typing", self.typing)
        r("GET", "/guilds/{guild_id}", self.get_guild)
        r("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", self.get_guild_roles)
        r("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)

    def _route(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
        self.routes.append(Route(method, template, re.compile(f"^{pattern}$"), handler, auth))

    # --- plumbing ----------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        authorization = request.headers.get("Authorization")
        record = RequestRecord(
            method=request.method,
            path=path,
            route="<unknown>",
            query=dict(request.query),
            authorized=authorization == f"Bot {self.emu.bot_token}",
            json=None,
            files=[],
            time=time.monotonic(),
            audit_log_reason=request.headers.get("X-Audit-Log-Reason"),
        )
        self.emu.requests.append(record)
        try:
            reply = await self._answer(request, record, authorization)
        except ApiError as exc:
            if exc.problem:
                self.emu._problem(f"{request.method} {path}: {exc.problem}")
            reply = Reply(exc.status, exc.body())
        except Exception as exc:
            self.emu._problem(f"{request.method} {path}: emulator exception {exc!r}\n{traceback.format_exc(limit=6)}")
            reply = Reply(400, {"message": f"Emulator error: {exc!r}", "code": 0})
        lost = self.emu._take_lost_answer(request.method, path) if reply.status < 400 else None
        if lost is not None:
            record.injected = True
            record.response = reply.body
            record.status = 500
            self.emu._notify()
            if lost.reset and request.transport is not None:
                request.transport.abort()
                return web.Response(status=500)
            return web.Response(
                status=500,
                body=json.dumps({"message": "500: Internal Server Error", "code": 0}).encode(),
                headers={"Content-Type": "application/json"},
            )
        record.status = reply.status
        record.response = reply.body if reply.raw is None else f"<{len(reply.raw)} bytes>"
        if reply.status >= 400 and isinstance(reply.body, dict):
            record.error_code = reply.body.get("code")
        self.emu._notify()
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers={"Content-Type": reply.content_type})
        if reply.status == 204 or reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        headers = {"Content-Type": "application/json", **reply.headers}
        return web.Response(status=reply.status, body=json.dumps(reply.body).encode(), headers=headers)

    async def _answer(self, request: web.Request, record: RequestRecord, authorization: str | None) -> Reply:
        path = record.path
        if path.startswith("/attachments/") or path.startswith("/media/attachments/"):
            record.route = "/attachments/{attachment_id}/{filename}"
            fault = await self.emu._apply_fault(request.method, path)
            if fault is not None:
                record.injected = True
                return fault
            return self.serve_attachment(path)
        if not path.startswith(API_PREFIX + "/"):
            raise ApiError(404, 0, "404: Not Found", problem="request outside /api/v10 and /attachments")
        sub = path[len(API_PREFIX) :]
        route, params, other_methods = self._match(request.method, sub)
        if route is not None:
            record.route = route.template
        record.json, record.files = await self._read_body(request)
        fault = await self.emu._apply_fault(request.method, path)
        if fault is not None:
            record.injected = True
            return fault
        if route is None:
            if other_methods:
                raise ApiError(405, 0, "405: Method Not Allowed", problem=f"method not allowed (has {other_methods})")
            raise ApiError(404, 0, "404: Not Found", problem="unimplemented route")
        if route.auth and not record.authorized:
            raise ApiError(
                401,
                0,
                "401: Unauthorized",
                problem=None if authorization else "bot route called without an Authorization header",
            )
        api_request = ApiRequest(
            method=request.method,
            path=sub,
            params=params,
            query=record.query,
            headers=CIMultiDict(request.headers),
            json=record.json,
            files=record.files,
            record=record,
        )
        return await route.handler(api_request)

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        others: list[str] = []
        for route in self.routes:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method == method:
                return route, m.groupdict(), []
            others.append(route.method)
        return None, {}, others

    async def _read_body(self, request: web.Request) -> tuple[Any, list[FileRecord]]:
        files: list[FileRecord] = []
        if not request.body_exists:
            return None, files
        if request.content_type == "multipart/form-data":
            payload: Any = None
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    raise malformed(["multipart"], "nested multipart bodies are not supported")
                data = bytes(await part.read(decode=False))
                if part.name == "payload_json":
                    payload = _parse_json(data)
                elif part.filename is not None:
                    files.append(FileRecord(part.name or "", part.filename, part.headers.get("Content-Type"), data))
                else:
                    raise malformed([part.name or "?"], "unexpected non-file multipart field")
            return payload, files
        raw = await request.read()
        if not raw:
            return None, files
        if request.content_type != "application/json":
            raise malformed([], f"unexpected request content type {request.content_type!r}")
        return _parse_json(raw), files

    # --- lookups -----------------------------------------------------------------------------------
    def _channel(self, raw_id: str) -> ChannelState:
        channel = self.world.channels.get(parse_snowflake(raw_id))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _require_view(self, channel: ChannelState) -> int:
        perms = self.world.bot_permissions(channel.id)
        if not channel.is_dm and not has_permission(perms, VIEW_CHANNEL):
            raise ApiError(403, 50001, "Missing Access")
        return perms

    def _message_in(self, channel: ChannelState, raw_id: str) -> MessageRecord:
        msg = self.world.messages.get(parse_snowflake(raw_id))
        if msg is None or msg.deleted or msg.ephemeral or msg.channel_id != channel.id:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _interaction_for_token(self, app_id: str, token: str) -> InteractionRecord:
        if parse_snowflake(app_id) != self.world.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        inter = self.emu._interactions_by_token.get(token)
        if inter is None:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if time.time() - snowflake_time(inter.id) > self.emu.token_lifetime_s:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if inter.ack_type is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        return inter

    def _interaction_message(self, inter: InteractionRecord, raw_id: str) -> MessageRecord:
        if raw_id in ("@original", "%40original"):
            mid = inter.original_message_id
        else:
            mid = parse_snowflake(raw_id)
            if mid not in (inter.original_message_id, *inter.followup_message_ids):
                mid = None
        msg = self.world.messages.get(mid) if mid is not None else None
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return msg

    def _rest_visible(self, msg: MessageRecord) -> bool:
        """MESSAGE_CONTENT over REST follows the application's setting, with Discord's exemptions."""
        return self.emu.message_content_intent_allowed or self.emu._content_exempt(msg)

    # --- messages: create and edit -----------------------------------------------------------------

    def _require_attach(self, channel: ChannelState, files: list[FileRecord]) -> None:
        if files and not channel.is_dm and not has_permission(self.world.bot_permissions(channel.id), ATTACH_FILES):
            raise ApiError(403, 50013, "Missing Permissions")

    # --- simple routes -----------------------------------------------------------------------------
    async def get_gateway(self, req: ApiRequest) -> Reply:
        return Reply(200, {"url": self.emu.gateway_url})

    async def get_gateway_bot(self, req: ApiRequest) -> Reply:
        return Reply(
            200,
            {
                "url": self.emu.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            },
        )

    async def get_me(self, req: ApiRequest) -> Reply:
        user = self.world.user_json(self.world.bot_user_id)
        return Reply(200, user | {"verified": True, "mfa_enabled": False, "bio": "", "locale": "en-US"})

    async def get_my_guilds(self, req: ApiRequest) -> Reply:
        """The bot's servers as partial guilds, in id order, paged with `after`/`before`/`limit` (max 200)."""
        try:
            limit = max(1, min(200, int(req.query.get("limit", "200"))))
        except ValueError:
            raise invalid_form(["limit"], "NUMBER_TYPE_COERCE", "Value is not int.") from None
        me = self.world.bot_user_id
        ids = sorted(g.id for g in self.world.guilds.values() if me in g.members)
        if "after" in req.query:
            ids = [g for g in ids if g > parse_snowflake(req.query["after"])]
        if "before" in req.query:
            ids = [g for g in ids if g < parse_snowflake(req.query["before"])][-limit:]
        out: list[dict[str, Any]] = []
        for gid in ids[:limit]:
            guild = self.world.guilds[gid]
            out.append(
                {
                    "id": str(gid),
                    "name": guild.name,
                    "icon": None,
                    "banner": None,
                    "owner": guild.owner_id == me,
                    "permissions": str(self.world.base_permissions(gid, me)),
                    "features": [],
                }
            )
        return Reply(200, out)

    async def get_application(self, req: ApiRequest) -> Reply:
        owner = self.world.user_json(self.emu.owner_id)
        return Reply(
            200,
            {
                "id": str(self.world.application_id),
                "name": self.world.users[self.world.bot_user_id].username,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": owner,
                "team": None,
                "verify_key": "0" * 64,
                "flags": 1 << 19 if self.emu.message_content_intent_allowed else 0,
                "interactions_endpoint_url": None,
                "bot": self.world.user_json(self.world.bot_user_id),
                "approximate_guild_count": len(self.world.guilds),
            },
        )

    async def get_user(self, req: ApiRequest) -> Reply:
        uid = parse_snowflake(req.params["user_id"])
        if uid not in self.world.users:
            raise ApiError(404, 10013, "Unknown User")
        return Reply(200, self.world.user_json(uid))

    async def create_dm(self, req: ApiRequest) -> Reply:
        body = req.body()
        try:
            uid = int(body["recipient_id"])
        except (KeyError, TypeError, ValueError):
            raise malformed(["recipient_id"], "recipient_id is required") from None
        user = self.world.users.get(uid)
        if user is None or uid == self.world.bot_user_id:
            raise ApiError(400, 50033, "Invalid Recipient(s)")
        channel = self.world.dm_channel(uid)
        return Reply(200, self.world.channel_json(channel.id))

    async def get_guild(self, req: ApiRequest) -> Reply:
        guild = self.world.guilds.get(parse_snowflake(req.params["guild_id"]))
        if guild is None or self.world.bot_user_id not in guild.members:
            raise ApiError(404, 10004, "Unknown Guild")
        out = self.world.guild_json(guild.id)
        if _truthy(req.query.get("with_counts")):
            out.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return Reply(200, out)

    async def get_guild_channels(self, req: ApiRequest) -> Reply:
        guild = self.world.guilds.get(parse_snowflake(req.params["guild_id"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        chans = [self.world.channel_json(c) for c in guild.channel_ids if not self.world.channels[c].is_thread]
        return Reply(200, chans)

    async def get_guild_roles(self, req: ApiRequest) -> Reply:
        guild = self.world.guilds.get(parse_snowflake(req.params["guild_id"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return Reply(200, [self.world.role_json(r) for r in guild.roles.values()])

    async def get_member(self, req: ApiRequest) -> Reply:
        guild = self.world.guilds.get(parse_snowflake(req.params["guild_id"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        uid = parse_snowflake(req.params["user_id"])
        if uid not in guild.members:
            raise ApiError(404, 10007, "Unknown Member")
        return Reply(200, self.world.member_json(guild.id, uid))

    async def get_channel(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        self._require_view(channel)
        return Reply(200, self.world.channel_json(channel.id))

    async def typing(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        perms = self._require_view(channel)
        if not channel.is_dm and not has_permission(perms, _send_bit(channel)):
            raise ApiError(403, 50013, "Missing Permissions")
        return Reply(204)

    def serve_attachment(self, path: str) -> Reply:
        parts = path.split("/")
        try:
            aid = int(parts[-2])
        except (IndexError, ValueError):
            raise ApiError(404, 0, "404: Not Found") from None
        att = self.world.attachments.get(aid)
        if att is None or att.filename != parts[-1]:
            raise ApiError(404, 0, "This content is no longer available.")
        return Reply(200, raw=att.data, content_type=att.content_type or "application/octet-stream")

    # --- application commands ----------------------------------------------------------------------
    def _scope(self, req: ApiRequest) -> str | int:
        if parse_snowflake(req.params["app_id"]) != self.world.application_id:
            raise ApiError(403, 50001, "Missing Access", problem="commands route for another application id")
        if "guild_id" not in req.params:
            return "global"
        gid = parse_snowflake(req.params["guild_id"])
        guild = self.world.guilds.get(gid)
        if guild is None or self.world.bot_user_id not in guild.members:
            raise ApiError(403, 50001, "Missing Access")
        return gid

    async def get_commands(self, req: ApiRequest) -> Reply:
        return Reply(200, self.emu.commands.get(self._scope(req), []))

    async def put_commands(self, req: ApiRequest) -> Reply:
        scope = self._scope(req)
        body = req.json
        if not isinstance(body, list) or not all(isinstance(c, dict) for c in body):
            raise malformed([], "bulk overwrite expects a JSON list of command objects")
        seen: set[tuple[int, str]] = set()
        counts: dict[int, int] = {}
        out: list[dict[str, Any]] = []
        for i, cmd in enumerate(body):
            ctype = int(cmd.get("type", 1))
            name = cmd.get("name")
            validate_command(i, cmd, ctype)
            assert isinstance(name, str)
            if (ctype, name) in seen:
                raise invalid_form([i, "name"], "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Duplicate name {name!r}")
            seen.add((ctype, name))
            counts[ctype] = counts.get(ctype, 0) + 1
            key = (str(scope), ctype, name)
            cid = self._command_ids.setdefault(key, self.emu.mint_snowflake())
            stored = dict(cmd)
            stored.update(
                id=str(cid),
                application_id=str(self.world.application_id),
                type=ctype,
                name=name,
                description=cmd.get("description") or "",
                version=str(self.emu.mint_snowflake()),
                options=cmd.get("options") or [],
                default_member_permissions=cmd.get("default_member_permissions"),
                nsfw=bool(cmd.get("nsfw", False)),
            )
            if scope != "global":
                stored["guild_id"] = str(scope)
            out.append(stored)
        for ctype, limit in ((1, 100), (2, 15), (3, 15)):
            if counts.get(ctype, 0) > limit:
                raise ApiError(400, 30032, f"Maximum number of application commands reached ({limit})")
        self.emu.commands[scope] = out
        return Reply(200, out)

    # --- interactions ------------------------------------------------------------------------------
    async def interaction_callback(self, req: ApiRequest) -> Reply:
        inter = self.emu.interactions.get(parse_snowflake(req.params["interaction_id"]))
        if inter is None or inter.token != req.params["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        body = req.body()
        cb_type = body.get("type")
        now = time.monotonic()
        latency = now - inter.dispatched_at
        if inter.ack_type is not None:
            inter.duplicate_acks.append(cb_type if isinstance(cb_type, int) else -1)
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if inter.ack_rejected is not None:
            raise ApiError(404, 10062, "Unknown interaction")
        if latency > self.emu.ack_deadline_s:
            inter.ack_latency_s = latency
            inter.ack_rejected = f"late: {latency:.3f}s after dispatch (deadline {self.emu.ack_deadline_s}s)"
            raise ApiError(404, 10062, "Unknown interaction")
        if not isinstance(cb_type, int):
            raise malformed(["type"], "callback type must be an integer")
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise malformed(["data"], "callback data must be an object")
        allowed = {
            INTERACTION_APPLICATION_COMMAND: (4, 5, 9),
            INTERACTION_COMPONENT: (4, 5, 6, 7, 9),
            INTERACTION_MODAL_SUBMIT: (4, 5, 6, 7),
            INTERACTION_AUTOCOMPLETE: (8,),
        }.get(inter.type, ())
        if cb_type not in allowed or (cb_type in (6, 7) and inter.message_id is None):
            raise invalid_form(
                ["type"],
                "INTERACTION_CALLBACK_TYPE_INVALID",
                f"Callback type {cb_type} invalid for interaction type {inter.type}",
            )
        channel = self.world.channels[inter.channel_id]
        msg: MessageRecord | None = None
        dispatch_event: str | None = None
        if cb_type in (4, 5):
            msg_type = 0
            if inter.type == INTERACTION_APPLICATION_COMMAND:
                msg_type = 20 if inter.data.get("type", 1) == 1 else 23
            ephemeral_bit = FLAG_EPHEMERAL
            allowed_flags = (
                ephemeral_bit | FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_IS_COMPONENTS_V2
                if cb_type == 4
                else ephemeral_bit
            )
            msg = self.writer.create_message(
                channel=channel,
                body=data if cb_type == 4 else {"flags": data.get("flags", 0)},
                files=req.files if cb_type == 4 else [],
                via="interaction",
                limit=inter.attachment_size_limit,
                allowed_flags=allowed_flags,
                default_parse=("users",),
                interaction=inter,
                msg_type=msg_type,
                force_flags=FLAG_LOADING if cb_type == 5 else 0,
            )
            inter.original_message_id = msg.id
            inter.ephemeral = msg.ephemeral
            dispatch_event = "MESSAGE_CREATE"
        elif cb_type == 6:
            inter.original_message_id = inter.message_id
        elif cb_type == 7:
            assert inter.message_id is not None
            msg = self.world.messages.get(inter.message_id)
            if msg is None or msg.deleted:
                raise ApiError(404, 10008, "Unknown Message")
            self.writer.apply_edit(msg, data, req.files, limit=inter.attachment_size_limit, default_parse=("users",))
            inter.original_message_id = msg.id
            dispatch_event = "MESSAGE_UPDATE"
        elif cb_type == 9:
            validate_modal(data)
            inter.modal = data
        elif cb_type == 8:
            choices = data.get("choices") or []
            if not isinstance(choices, list) or len(choices) > 25:
                raise invalid_form(["data", "choices"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            inter.autocomplete_choices = choices
        inter.ack_type = cb_type
        inter.ack_payload = body
        inter.ack_at = now
        inter.ack_latency_s = latency
        if msg is not None and dispatch_event is not None:
            self.emu._announce(dispatch_event, msg)
        if not _truthy(req.query.get("with_response")):
            return Reply(204)
        resp_inter: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        resource: dict[str, Any] = {"type": cb_type}
        if msg is not None:
            resp_inter.update(
                response_message_id=str(msg.id),
                response_message_loading=cb_type == 5,
                response_message_ephemeral=msg.ephemeral,
            )
            resource["message"] = self.world.message_json(msg)
        return Reply(200, {"interaction": resp_inter, "resource": resource})

    async def webhook_execute(self, req: ApiRequest) -> Reply:
        inter = self._interaction_for_token(req.params["app_id"], req.params["token"])
        body = req.body()
        channel = self.world.channels[inter.channel_id]
        if req.query.get("thread_id"):
            channel = self._channel(req.query["thread_id"])
        original = self.world.messages.get(inter.original_message_id) if inter.original_message_id else None
        if inter.ack_type == 5 and original is not None and original.loading and not original.deleted:
            # The first follow-up after a deferred response resolves the "thinking" message, keeping the
            # ephemerality chosen at defer time.
            if not original.ephemeral:
                self._require_attach(channel, req.files)
            edit = {k: v for k, v in body.items() if k not in ("flags", "nonce", "tts", "username", "avatar_url")}
            if "flags" in body:
                edit["flags"] = int_field(body, "flags") & (FLAG_SUPPRESS_EMBEDS | FLAG_IS_COMPONENTS_V2)
            self.writer.apply_edit(
                original, edit, req.files, limit=inter.attachment_size_limit, default_parse=("users",)
            )
            inter.followup_message_ids.append(original.id)
            self.emu._announce("MESSAGE_UPDATE", original)
            msg = original
        else:
            ephemeral = bool(int_field(body, "flags") & FLAG_EPHEMERAL)
            if not ephemeral:
                self._require_attach(channel, req.files)
            msg = self.writer.create_message(
                channel=channel,
                body=body,
                files=req.files,
                via="followup",
                limit=inter.attachment_size_limit,
                allowed_flags=FLAG_EPHEMERAL
                | FLAG_SUPPRESS_EMBEDS
                | FLAG_SUPPRESS_NOTIFICATIONS
                | FLAG_IS_COMPONENTS_V2,
                default_parse=("users",),
                interaction=inter,
            )
            inter.followup_message_ids.append(msg.id)
            self.emu._announce("MESSAGE_CREATE", msg)
        if not _truthy(req.query.get("wait")):
            return Reply(204)
        return Reply(200, self.world.message_json(msg))

    async def webhook_get_message(self, req: ApiRequest) -> Reply:
        inter = self._interaction_for_token(req.params["app_id"], req.params["token"])
        msg = self._interaction_message(inter, req.params["message_id"])
        return Reply(200, self.world.message_json(msg))

    async def webhook_edit_message(self, req: ApiRequest) -> Reply:
        inter = self._interaction_for_token(req.params["app_id"], req.params["token"])
        msg = self._interaction_message(inter, req.params["message_id"])
        if not msg.ephemeral:
            self._require_attach(self.world.channels[msg.channel_id], req.files)
        self.writer.apply_edit(msg, req.body(), req.files, limit=inter.attachment_size_limit, default_parse=("users",))
        self.emu._announce("MESSAGE_UPDATE", msg)
        return Reply(200, self.world.message_json(msg))

    async def webhook_delete_message(self, req: ApiRequest) -> Reply:
        inter = self._interaction_for_token(req.params["app_id"], req.params["token"])
        msg = self._interaction_message(inter, req.params["message_id"])
        msg.deleted = True
        self.emu._announce("MESSAGE_DELETE", msg)
        return Reply(204)

    # --- channel messages --------------------------------------------------------------------------
    async def post_message(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        body = req.body()
        perms = self._require_view(channel)
        if channel.is_dm:
            recipient = self.world.users[channel.recipient_id or 0]
            if recipient.dms_closed or recipient.bot:
                raise ApiError(403, 50007, "Cannot send messages to this user")
        else:
            if not has_permission(perms, _send_bit(channel)):
                raise ApiError(403, 50013, "Missing Permissions")
            if req.files and not has_permission(perms, ATTACH_FILES):
                raise ApiError(403, 50013, "Missing Permissions")
            if body.get("message_reference") is not None and not has_permission(perms, READ_MESSAGE_HISTORY):
                raise ApiError(403, 50013, "Missing Permissions")
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            key = (channel.id, self.world.bot_user_id, str(nonce))
            seen = self._nonces.get(key)
            if seen is not None and time.monotonic() - seen[1] < self.emu.nonce_window_s:
                existing = self.world.messages[seen[0]]
                return Reply(200, self.world.message_json(existing))
        msg = self.writer.create_message(
            channel=channel,
            body=body,
            files=req.files,
            via="bot",
            limit=self.world.filesize_limit(channel.guild_id),
            allowed_flags=FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_IS_COMPONENTS_V2,
            default_parse=("users", "roles", "everyone"),
            embed_links=channel.is_dm or has_permission(perms, EMBED_LINKS),
        )
        if nonce is not None:
            self._nonces[(channel.id, self.world.bot_user_id, str(nonce))] = (msg.id, time.monotonic())
        self.emu._announce("MESSAGE_CREATE", msg)
        return Reply(200, self.world.message_json(msg))

    async def get_message(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        perms = self._require_view(channel)
        if not channel.is_dm and not has_permission(perms, READ_MESSAGE_HISTORY):
            raise ApiError(403, 50013, "Missing Permissions")
        msg = self._message_in(channel, req.params["message_id"])
        return Reply(200, self.world.message_json(msg, visible=self._rest_visible))

    async def get_messages(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        perms = self._require_view(channel)
        if not channel.is_dm and not has_permission(perms, READ_MESSAGE_HISTORY):
            return Reply(200, [])
        limit = max(1, min(100, int(req.query.get("limit", "50"))))
        msgs = [
            m for m in self.world.messages.values() if m.channel_id == channel.id and not m.deleted and not m.ephemeral
        ]
        msgs.sort(key=lambda m: m.id)
        if "before" in req.query:
            msgs = [m for m in msgs if m.id < parse_snowflake(req.query["before"])][-limit:]
        elif "after" in req.query:
            msgs = [m for m in msgs if m.id > parse_snowflake(req.query["after"])][:limit]
        elif "around" in req.query:
            around = parse_snowflake(req.query["around"])
            older = [m for m in msgs if m.id <= around][-(limit - limit // 2) :]
            newer = [m for m in msgs if m.id > around][: limit // 2]
            msgs = older + newer
        else:
            msgs = msgs[-limit:]
        return Reply(200, [self.world.message_json(m, visible=self._rest_visible) for m in reversed(msgs)])

    async def edit_message(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        perms = self._require_view(channel)
        msg = self._message_in(channel, req.params["message_id"])
        body = req.body()
        if msg.author_id != self.world.bot_user_id:
            if set(body) - {"flags"}:
                raise ApiError(403, 50005, "Cannot edit a message authored by another user")
            if not has_permission(perms, MANAGE_MESSAGES):
                raise ApiError(403, 50013, "Missing Permissions")
        self._require_attach(channel, req.files)
        self.writer.apply_edit(
            msg,
            body,
            req.files,
            limit=self.world.filesize_limit(channel.guild_id),
            default_parse=("users", "roles", "everyone"),
        )
        self.emu._announce("MESSAGE_UPDATE", msg)
        return Reply(200, self.world.message_json(msg, visible=self._rest_visible))

    async def delete_message(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        perms = self._require_view(channel)
        msg = self._message_in(channel, req.params["message_id"])
        if msg.author_id != self.world.bot_user_id and (channel.is_dm or not has_permission(perms, MANAGE_MESSAGES)):
            raise ApiError(403, 50013, "Missing Permissions")
        msg.deleted = True
        self.emu._announce("MESSAGE_DELETE", msg)
        return Reply(204)

    async def add_reaction(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        msg = self._message_in(channel, req.params["message_id"])
        perms = self._require_view(channel)
        if not channel.is_dm and not has_permission(perms, READ_MESSAGE_HISTORY):
            raise ApiError(403, 50013, "Missing Permissions")
        emoji = req.params["emoji"]
        if emoji not in msg.reactions:
            msg.reactions.append(emoji)
        return Reply(204)

    async def remove_reaction(self, req: ApiRequest) -> Reply:
        channel = self._channel(req.params["channel_id"])
        msg = self._message_in(channel, req.params["message_id"])
        if req.params["emoji"] in msg.reactions:
            msg.reactions.remove(req.params["emoji"])
        return Reply(204)


# --- module helpers --------------------------------------------------------------------------------
def _send_bit(channel: ChannelState) -> int:
    return SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(
            400, 50109, "The request body contains invalid JSON.", problem=f"invalid JSON body {raw[:120]!r}"
        ) from None

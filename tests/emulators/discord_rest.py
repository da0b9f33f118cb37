"""The emulator's REST side: routing, body parsing, and the routes that are not about messages.

Only the routes the bot calls are here (and in ``discord_posting``, the message ones); any other is answered
404 and recorded as a problem, so a bot that starts using a new one shows it at once.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict

from .discord_models import FileRecord, RequestRecord
from .discord_posting import Posting
from .discord_rules import (
    ApiError,
    ApiRequest,
    Reply,
    invalid_form,
    malformed,
    parse_json,
    parse_snowflake,
    truthy,
    validate_command,
)

if TYPE_CHECKING:
    from .discord_emulator import DiscordEmulator

API_PREFIX = "/api/v10"
Handler = Callable[[ApiRequest], Awaitable[Reply]]


@dataclass
class Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    auth: bool


class RestApi:
    """All REST routes of the emulator. State lives on the emulator; this class holds only the logic."""

    def __init__(self, emulator: DiscordEmulator) -> None:
        self.emu = emulator
        self.world = emulator.world
        self._command_ids: dict[tuple[str, int, str], int] = {}
        self.routes: list[Route] = []
        r = self._route
        m = self.posting = Posting(emulator)
        r("GET", "/gateway/bot", self.get_gateway_bot)
        r("GET", "/users/@me", self.get_me)
        r("GET", "/users/@me/guilds", self.get_my_guilds)
        r("POST", "/users/@me/channels", self.create_dm)
        r("GET", "/users/{user_id}", self.get_user)
        r("GET", "/oauth2/applications/@me", self.get_application)
        r("GET", "/applications/@me", self.get_application)
        r("PUT", "/applications/{app_id}/commands", self.put_commands)
        r("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self.put_commands)
        r("POST", "/interactions/{interaction_id}/{token}/callback", m.interaction_callback, auth=False)
        r("POST", "/webhooks/{app_id}/{token}", m.webhook_execute, auth=False)
        r("PATCH", "/webhooks/{app_id}/{token}/messages/{message_id}", m.webhook_edit_message, auth=False)
        r("GET", "/channels/{channel_id}/messages", m.get_messages)
        r("POST", "/channels/{channel_id}/messages", m.post_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", m.get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", m.edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", m.delete_message)
        r("GET", "/guilds/{guild_id}", self.get_guild)
        r("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
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
        )
        self.emu.requests.append(record)
        try:
            reply = await self._answer(request, record, authorization)
        except ApiError as exc:
            if exc.problem:
                self.emu._problem(f"{request.method} {path}: {exc.problem}")
            reply = Reply(exc.status, exc.body())
        except ConnectionResetError:  # the bot went away while it sent the body (a test stopped it): not ours
            record.status = 499
            return web.Response(status=499)
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
                    payload = parse_json(data)
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
        return parse_json(raw), files

    # --- simple routes -----------------------------------------------------------------------------
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
        if truthy(req.query.get("with_counts")):
            out.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return Reply(200, out)

    async def get_guild_channels(self, req: ApiRequest) -> Reply:
        guild = self.world.guilds.get(parse_snowflake(req.params["guild_id"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        chans = [self.world.channel_json(c) for c in guild.channel_ids if not self.world.channels[c].is_thread]
        return Reply(200, chans)

    async def get_member(self, req: ApiRequest) -> Reply:
        guild = self.world.guilds.get(parse_snowflake(req.params["guild_id"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        uid = parse_snowflake(req.params["user_id"])
        if uid not in guild.members:
            raise ApiError(404, 10007, "Unknown Member")
        return Reply(200, self.world.member_json(guild.id, uid))

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

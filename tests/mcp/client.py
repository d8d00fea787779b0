"""An MCP client for tests/mcp.rs, on the official Python SDK (`mcp` on PyPI, installed by
scripts/deps under $SKILLSD_TEST_TOOLS/mcp).

    client.py tour URL MODE [TOKEN]      every request an agent makes, answers as JSON
    client.py watch URL MODE URI         waits for list_changed, then reads URI again
    client.py sessions URL CAP           opens CAP + 1 sessions: the idlest one closes
    client.py call URL MODE TOKEN        one tools/list, its outcome as JSON
    client.py search URL MODE QUERY      one search_skills call
    client.py skills URL MODE            the names skills/list gives
    client.py idle URL SECONDS           one session, asked again after SECONDS idle
    client.py listeners URL CAP          CAP + 1 change subscriptions (2026-07-28)
    client.py limits URL MODE            what is served of skills at and over SEP-2640's limits
    client.py revoked URL MODE TOKEN     a change stream whose token is revoked while it is open

MODE is `legacy` (the initialize handshake, sessions, a GET stream for notifications)
or `auto` (the SDK's default: `server/discover`, then 2026-07-28 without sessions and
`subscriptions/listen` for notifications). Each command prints one JSON document on its
last line of output (`watch` prints {"ready": true} first, once it listens).
"""

import asyncio
import contextlib
import base64
import hashlib
import json
import sys
from typing import Any

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import Request
from pydantic import TypeAdapter

TIMEOUT = 60


def connect(
    url: str, mode: str, token: str | None = None, on_message=None, statuses: list[int] | None = None
) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    http = create_mcp_http_client(headers=headers)
    if statuses is not None:
        # The HTTP status of every answer (the SDK reports a 401 as a generic error).
        async def record(response) -> None:
            statuses.append(response.status_code)

        http.event_hooks = {"response": [record]}
    kwargs: dict[str, Any] = {"mode": mode, "read_timeout_seconds": TIMEOUT, "cache": None}
    if on_message is not None:
        kwargs["message_handler"] = on_message
    return Client(streamable_http_client(url, http_client=http), **kwargs)


async def raw(client: Client, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """A request the SDK has no method for (the skills extension's)."""
    request = Request[Any, Any](method=method, params=params)
    return await client.session.send_request(request, TypeAdapter(dict[str, Any]))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def contents_bytes(result) -> dict[str, Any]:
    """The one content of a resources/read: its bytes' digest and size, its type, text."""
    (content,) = result.contents
    out: dict[str, Any] = {"uri": str(content.uri), "mimeType": content.mime_type}
    if getattr(content, "text", None) is not None:
        data = content.text.encode("utf-8")
        out["text"] = content.text
        out["kind"] = "text"
    else:
        data = base64.b64decode(content.blob)
        out["kind"] = "blob"
    out["digest"] = sha256(data)
    out["size"] = len(data)
    return out


def error_of(e: BaseException) -> dict[str, Any]:
    if isinstance(e, MCPError):
        return {"error": {"code": e.error.code, "message": e.error.message}}
    return {"error": {"code": None, "message": f"{type(e).__name__}: {e}"}}


async def attempt(coro) -> dict[str, Any]:
    try:
        return {"ok": await coro}
    except Exception as e:  # the test reads which error it was
        return error_of(e)


def dump(model) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def tour(url: str, mode: str, token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with connect(url, mode, token) as client:
        out["protocolVersion"] = client.session.protocol_version
        caps = client.session.server_capabilities
        out["capabilities"] = dump(caps) if caps is not None else None
        out["instructions"] = client.session.instructions
        out["tools"] = [dump(t) for t in (await client.list_tools()).tools]

        async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
            try:
                r = await client.call_tool(name, args)
            except Exception as e:
                return error_of(e)
            return {
                "isError": bool(r.is_error),
                "text": [c.text for c in r.content if getattr(c, "text", None) is not None],
                "structured": r.structured_content,
            }

        out["search"] = {
            q: await call("search_skills", {"query": q, "limit": 5})
            for q in ["deploy", "region", "conventions", "proposed", "old", "zzzqqq"]
        }
        out["search_limit_1"] = await call("search_skills", {"query": "deploy OR git", "limit": 1})
        out["search_bad"] = {
            "empty": await call("search_skills", {"query": ""}),
            "limit0": await call("search_skills", {"query": "deploy", "limit": 0}),
            "limit_big": await call("search_skills", {"query": "deploy", "limit": 1000}),
            "not_string": await call("search_skills", {"query": 5}),
            "nul": await call("search_skills", {"query": "a\u0000b"}),
        }
        out["get_skill"] = {
            n: await call("get_skill", {"name": n})
            for n in ["deploy", "git-workflow", "old-way", "proposed", "nope", "../deploy"]
        }
        out["unknown_tool"] = await call("no_such_tool", {})

        resources: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await client.list_resources(cursor=cursor)
            resources += [dump(r) for r in page.resources]
            cursor = page.next_cursor
            if not cursor:
                break
        out["resources"] = resources
        out["templates"] = [dump(t) for t in (await client.list_resource_templates()).resource_templates]
        out["reads"] = {}
        for r in resources:
            out["reads"][r["uri"]] = await attempt(_read(client, r["uri"]))
        out["bad_reads"] = {
            uri: await attempt(_read(client, uri))
            for uri in [
                "skill://deploy/../git-workflow/SKILL.md",
                "skill://deploy/%2e%2e/%2e%2e/etc/passwd",
                "skill://deploy/scripts%2Frun.sh",
                "skill:///etc/passwd",
                "skill://deploy//etc/passwd",
                "file:///etc/passwd",
                "skill://nope/SKILL.md",
                "skill://old-way/SKILL.md",
                "skill://proposed/SKILL.md",
                "skill://deploy/missing.md",
            ]
        }

        out["skills_list"] = await attempt(raw(client, "skills/list", {}))
        out["skills_get"] = {
            uri: await attempt(raw(client, "skills/get", {"uri": uri}))
            for uri in [
                "skill://deploy/SKILL.md",
                "skill://git-workflow/SKILL.md",
                "skill://old-way/SKILL.md",
                "skill://nope/SKILL.md",
                "skill://deploy/references/guide.md",
                "skill://deploy/../git-workflow/SKILL.md",
            ]
        }
        out["directories"] = {
            uri: await attempt(directory(client, uri))
            for uri in [
                "skill://deploy",
                "skill://deploy/scripts",
                "skill://git-workflow",
                "skill://deploy/SKILL.md",
                "skill://deploy/nope",
                "skill://deploy/",
                "skill://nope",
                "skill://old-way",
                "skill://deploy/..",
                "skill://deploy/%2e%2e/git-workflow",
            ]
        }
    return out


async def directory(client: Client, uri: str) -> list[dict[str, Any]]:
    """Every child `resources/directory/read` gives for `uri`, page after page."""
    children: list[dict[str, Any]] = []
    params: dict[str, Any] = {"uri": uri}
    while True:
        page = await raw(client, "resources/directory/read", params)
        children += page["resources"]
        if not page.get("nextCursor"):
            return children
        params = {"uri": uri, "cursor": page["nextCursor"]}


async def _read(client: Client, uri: str) -> dict[str, Any]:
    return contents_bytes(await client.read_resource(uri))


async def watch(url: str, mode: str, uri: str) -> dict[str, Any]:
    changed = anyio.Event()
    seen: list[str] = []

    async def on_message(message) -> None:
        method = getattr(message, "method", None)
        if method is not None:
            seen.append(method)
        if method == "notifications/resources/list_changed":
            changed.set()

    out: dict[str, Any] = {}
    async with connect(url, mode, None, on_message) as client:
        out["protocolVersion"] = client.session.protocol_version
        out["before"] = await _read(client, uri)
        if mode == "legacy":
            # The session's GET stream carries the notifications: ready once it is open.
            await asyncio.sleep(1)
            print(json.dumps({"ready": True}), flush=True)
            with anyio.fail_after(TIMEOUT):
                await changed.wait()
        else:
            async with client.listen(resources_list_changed=True) as sub:
                out["honored"] = dump(sub.honored)
                print(json.dumps({"ready": True}), flush=True)
                with anyio.fail_after(TIMEOUT):
                    async for event in sub:
                        seen.append(type(event).__name__)
                        break
        out["notifications"] = seen
        out["after"] = await _read(client, uri)
        out["skills_list"] = await raw(client, "skills/list", {})
    return out


async def sessions(url: str, cap: int) -> dict[str, Any]:
    """Opens `cap` sessions, uses the first again (the second is now the idlest), opens
    one more: the second must be the one closed."""
    out: dict[str, Any] = {}
    clients = [connect(url, "legacy") for _ in range(cap + 1)]
    entered = []
    try:
        for c in clients[:cap]:
            await c.__aenter__()
            entered.append(c)
            await asyncio.sleep(0.05)
        out["first_again"] = await attempt(_tools(clients[0]))
        await clients[cap].__aenter__()
        entered.append(clients[cap])
        out["after"] = [await attempt(_tools(c)) for c in clients]
    finally:
        for c in reversed(entered):
            try:
                with anyio.fail_after(10):
                    await c.__aexit__(None, None, None)
            except BaseException:
                pass
    return out


async def _tools(client: Client) -> list[str]:
    return [t.name for t in (await client.list_tools()).tools]


async def call(url: str, mode: str, token: str) -> dict[str, Any]:
    statuses: list[int] = []
    try:
        async with connect(url, mode, token or None, statuses=statuses) as client:
            return {"ok": await _tools(client), "statuses": statuses}
    except Exception as e:  # an ExceptionGroup from the transport's task group, too
        return {"error": {"message": f"{type(e).__name__}: {e!r}"}, "statuses": statuses}


async def search(url: str, mode: str, query: str) -> dict[str, Any]:
    async with connect(url, mode) as client:
        r = await client.call_tool("search_skills", {"query": query})
        return {"isError": bool(r.is_error), "structured": r.structured_content}


async def skills(url: str, mode: str) -> dict[str, Any]:
    async with connect(url, mode) as client:
        listing = await raw(client, "skills/list", {})
        return {"ok": [s["frontmatter"]["name"] for s in listing["skills"]]}


async def idle(url: str, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    client = connect(url, "legacy")
    await client.__aenter__()
    try:
        out["before"] = await attempt(_tools(client))
        await asyncio.sleep(seconds)
        with anyio.fail_after(TIMEOUT):
            out["after"] = await attempt(_tools(client))
    finally:
        try:
            with anyio.fail_after(10):
                await client.__aexit__(None, None, None)
        except BaseException:
            pass
    return out


async def listeners(url: str, cap: int) -> dict[str, Any]:
    """Opens `cap` subscriptions, then one more (refused), closes one, then one more."""
    out: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        subs = []
        for _ in range(cap):
            client = await stack.enter_async_context(connect(url, "auto"))
            subs.append(await stack.enter_async_context(client.listen(resources_list_changed=True)))
        statuses: list[int] = []
        extra = await stack.enter_async_context(connect(url, "auto", statuses=statuses))

        async def one_more() -> bool:
            with anyio.fail_after(TIMEOUT):
                async with extra.listen(resources_list_changed=True) as sub:
                    async for _ in sub:
                        break
            return True

        out["over_cap"] = await attempt(one_more())
        out["statuses"] = statuses
    return out


async def limits(url: str, mode: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with connect(url, mode) as client:
        listing = await raw(client, "skills/list", {})
        out["listed"] = {s["frontmatter"]["name"]: len(s["resources"]) for s in listing["skills"]}
        out["get"] = {
            n: await attempt(raw(client, "skills/get", {"uri": f"skill://{n}/SKILL.md"}))
            for n in ["many", "toomany", "full", "heavy"]
        }
        out["read"] = {
            n: await attempt(_read(client, f"skill://{n}/SKILL.md")) for n in ["many", "toomany"]
        }
        tool = {}
        for n in ["full", "heavy"]:
            r = await client.call_tool("get_skill", {"name": n})
            tool[n] = {
                "isError": bool(r.is_error),
                "text": [c.text for c in r.content if getattr(c, "text", None) is not None],
            }
        out["tool"] = tool
        out["directory"] = {
            uri: await attempt(directory(client, uri))
            for uri in ["skill://many/references", "skill://toomany/references"]
        }
        names = set()
        cursor = None
        while True:
            page = await client.list_resources(cursor=cursor)
            names |= {str(r.uri).split("/")[2] for r in page.resources}
            cursor = page.next_cursor
            if not cursor:
                break
        out["resource_skills"] = sorted(names)
    return out


async def revoked(url: str, mode: str, token: str) -> dict[str, Any]:
    """Opens a change stream with `token`; prints {"ready": true}, then {"first": ...}
    at the first list_changed; then waits up to 10 s for the stream's next event."""
    events: list[str] = []
    arrived = anyio.Event()

    async def on_message(message) -> None:
        method = getattr(message, "method", None)
        if method == "notifications/resources/list_changed":
            events.append(method)
            arrived.set()

    out: dict[str, Any] = {}
    try:
        await _revoked(url, mode, token, out, events, arrived, on_message)
    except Exception as e:  # leaving with a revoked token can fail: recorded, not fatal
        out["exit_error"] = f"{type(e).__name__}: {e!r}"
    return out


async def _revoked(url, mode, token, out, events, arrived, on_message) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(connect(url, mode, token, on_message))
        if mode == "legacy":
            await asyncio.sleep(1)
            print(json.dumps({"ready": True}), flush=True)
            with anyio.fail_after(TIMEOUT):
                await arrived.wait()
            print(json.dumps({"first": events[:]}), flush=True)
            with anyio.move_on_after(10):
                while len(events) == 1:
                    await asyncio.sleep(0.1)
            out["after"] = events[1:]
        else:
            sub = await stack.enter_async_context(client.listen(resources_list_changed=True))
            print(json.dumps({"ready": True}), flush=True)
            it = sub.__aiter__()
            with anyio.fail_after(TIMEOUT):
                first = await it.__anext__()
            print(json.dumps({"first": [type(first).__name__]}), flush=True)
            after: list[str] = []
            out["ended"] = False
            try:
                with anyio.move_on_after(10):
                    async for event in it:
                        after.append(type(event).__name__)
                        break
                    else:
                        out["ended"] = True
            except Exception as e:  # the stream ended with an error
                out["ended"] = True
                out["end_error"] = f"{type(e).__name__}: {e}"
            out["after"] = after


async def main() -> None:
    command, url = sys.argv[1], sys.argv[2]
    if command == "tour":
        token = sys.argv[4] if len(sys.argv) > 4 else None
        result = await tour(url, sys.argv[3], token)
    elif command == "watch":
        result = await watch(url, sys.argv[3], sys.argv[4])
    elif command == "sessions":
        result = await sessions(url, int(sys.argv[3]))
    elif command == "call":
        result = await call(url, sys.argv[3], sys.argv[4])
    elif command == "search":
        result = await search(url, sys.argv[3], sys.argv[4])
    elif command == "skills":
        result = await skills(url, sys.argv[3])
    elif command == "listeners":
        result = await listeners(url, int(sys.argv[3]))
    elif command == "limits":
        result = await limits(url, sys.argv[3])
    elif command == "revoked":
        result = await revoked(url, sys.argv[3], sys.argv[4])
    elif command == "idle":
        result = await idle(url, float(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

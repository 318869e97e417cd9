"""The sim over real HTTP, seen through the real openai and anthropic clients.

What others rely on: deterministic scripts, faults that surface as the SDKs' usual exceptions,
and company systems that apply each side effect once per Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from sim import scripts
from sim.conversation import Conversation, Turn
from sim.runner import SimServer, free_port

HIRE = {
    "employee_id": "E100",
    "full_name": "Ada Lovelace",
    "personal_email": "ada@home.example",
    "start_date": "2025-03-03",
    "ship_to": "12 Analytical Row, London",
    "laptop_model": "MacBook Pro 14",
}
TASK = "Onboard this new hire: " + json.dumps(HIRE)
ONBOARDING_ORDER = ["create_mailbox", "order_laptop", "wait_for_event", "send_email"]
COMPANY_PATHS = {
    "create_mailbox": "/hr/mailboxes",
    "order_laptop": "/it/laptops",
    "send_email": "/mail/messages",
}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": n, "description": n, "parameters": {}}}
    for n in ONBOARDING_ORDER
]
ANTHROPIC_TOOLS = [
    {"name": n, "description": n, "input_schema": {"type": "object"}} for n in ONBOARDING_ORDER
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimServer]:
    with SimServer(tmp_path_factory.mktemp("sim") / "sim.db") as server:
        yield server


@pytest.fixture
async def claude(
    sim: SimServer, http: httpx.AsyncClient
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=sim.url, api_key="sim", max_retries=0) as c:
        yield c


async def run_tool(http: httpx.AsyncClient, name: str, args: dict[str, Any], key: str) -> Any:
    """Execute a tool call against the company systems (wait_for_event: clearance arrives)."""
    if name == "wait_for_event":
        return {"status": "received", "event": "clearance_granted", "payload": {}}
    resp = await http.post(COMPANY_PATHS[name], json=args, headers={"Idempotency-Key": key})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def oai_create(client: openai.AsyncOpenAI, model: str, messages: list[Any], **kw: Any) -> Any:
    return await client.chat.completions.create(model=model, messages=messages, **kw)


async def claude_create(client: anthropic.AsyncAnthropic, model: str, **kw: Any) -> Any:
    kw.setdefault("messages", [{"role": "user", "content": TASK}])
    return await client.messages.create(model=model, max_tokens=1024, **kw)


# --- scripts through the real clients ---------------------------------------------------------


async def test_onboarding_with_openai(oai: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You onboard."},
        {"role": "user", "content": TASK},
    ]
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for _ in range(6):
        resp = await oai_create(oai, "onboarding", messages, tools=OPENAI_TOOLS, max_tokens=500)
        msg = resp.choices[0].message
        if not msg.tool_calls:
            break
        assert resp.choices[0].finish_reason == "tool_calls"
        call = msg.tool_calls[0]
        args = json.loads(call.function.arguments)
        calls.append((call.id, call.function.name, args))
        result = await run_tool(http, call.function.name, args, f"oai/{call.id}")
        messages.append(msg.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    assert [c[1] for c in calls] == ONBOARDING_ORDER
    assert [c[0] for c in calls] == [f"call_{i}_{n}" for i, n in enumerate(ONBOARDING_ORDER)]
    email = calls[3][2]
    assert email["to"] == HIRE["personal_email"] and "Ada" in email["subject"]
    assert "ada.lovelace@acme.example" in email["body"] and HIRE["start_date"] in email["body"]
    assert resp.choices[0].finish_reason == "stop" and msg.content
    assert "ada.lovelace@acme.example" in msg.content and "msg_" in msg.content
    assert resp.usage is not None and resp.usage.prompt_tokens > 0


async def test_onboarding_with_anthropic(
    claude: anthropic.AsyncAnthropic, http: httpx.AsyncClient
) -> None:
    messages: list[Any] = [{"role": "user", "content": TASK}]
    calls: list[tuple[str, str, Any]] = []
    for _ in range(6):
        resp = await claude_create(
            claude, "onboarding", system="You onboard.", messages=messages, tools=ANTHROPIC_TOOLS
        )
        uses = [b for b in resp.content if b.type == "tool_use"]
        if not uses:
            break
        assert resp.stop_reason == "tool_use"
        calls.append((uses[0].id, uses[0].name, uses[0].input))
        result = await run_tool(http, uses[0].name, dict(uses[0].input), f"claude/{uses[0].id}")
        messages.append({"role": "assistant", "content": [b.model_dump() for b in resp.content]})
        block = {"type": "tool_result", "tool_use_id": uses[0].id, "content": json.dumps(result)}
        messages.append({"role": "user", "content": [block]})
    assert [c[1] for c in calls] == ONBOARDING_ORDER
    assert [c[0] for c in calls] == [f"toolu_{i}_{n}" for i, n in enumerate(ONBOARDING_ORDER)]
    assert "ada.lovelace@acme.example" in calls[3][2]["body"]
    assert resp.stop_reason == "end_turn" and resp.content[0].type == "text"
    assert "msg_" in resp.content[0].text and resp.usage.output_tokens > 0
    sent = (await http.get("/mail/messages", params={"to": HIRE["personal_email"]})).json()
    assert any(m["body"] == calls[3][2]["body"] for m in sent["messages"])


async def test_replies_are_deterministic(oai: openai.AsyncOpenAI) -> None:
    messages = [{"role": "user", "content": TASK}]
    first = await oai_create(oai, "onboarding", messages)
    second = await oai_create(oai, "onboarding", messages)
    assert first.id == second.id
    assert first.choices[0].message.tool_calls == second.choices[0].message.tool_calls


async def test_bench_and_echo(oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": '{"turns": 2}'}]
    for i in (1, 2):
        msg = (await oai_create(oai, "bench", messages)).choices[0].message
        assert msg.tool_calls and json.loads(msg.tool_calls[0].function.arguments) == {
            "text": f"turn {i}"
        }
        messages.append(msg.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "{}"})
    assert (await oai_create(oai, "bench", messages)).choices[0].message.content == (
        "done after 2 turns"
    )
    resp = await claude_create(claude, "echo", messages=[{"role": "user", "content": "hello"}])
    assert resp.content[0].text == "hello"


def _conv(*results: tuple[str, str]) -> Conversation:
    turns = [Turn("user", TASK)]
    for name, text in results:
        turns += [Turn("assistant"), Turn("tool", text, name=name)]
    return Conversation(turns=turns)


def test_onboarding_script_branches() -> None:
    ok = '{"address": "ada.lovelace@acme.example"}'
    retry = scripts.onboarding(_conv(("create_mailbox", ok), ("order_laptop", '{"error": "x"}')))
    assert retry.tool_calls[0].name == "order_laptop"
    assert retry.tool_calls[0].args["model"] == HIRE["laptop_model"]
    failed = _conv(("create_mailbox", ok), ("order_laptop", '{"error": "x"}'))
    failed.turns += [Turn("assistant"), Turn("tool", "Error: down", name="order_laptop")]
    assert "failed twice" in scripts.onboarding(failed).text
    laptop = '{"order_id": "o1", "eta": "2025-03-01"}'
    timeout = _conv(
        ("create_mailbox", ok),
        ("order_laptop", laptop),
        ("wait_for_event", '{"status": "timeout"}'),
    )
    assert "not granted in time" in scripts.onboarding(timeout).text
    repair = _conv(("create_mailbox", ok))
    repair.turns.append(Turn("user", "Your previous reply had invalid JSON; try again."))
    assert scripts.onboarding(repair).tool_calls[0].name == "order_laptop"


# --- model faults ------------------------------------------------------------------------------


def fault(spec: str) -> dict[str, Any]:
    return {"extra_headers": {"x-sim-fault": spec}}


async def test_openai_error_faults(oai: openai.AsyncOpenAI) -> None:
    msgs = [{"role": "user", "content": TASK}]
    with pytest.raises(openai.RateLimitError) as rate:
        await oai_create(oai, "onboarding", msgs, **fault("rate_limit; retry_after=2"))
    assert rate.value.response.headers["retry-after"] == "2"
    assert rate.value.response.headers["retry-after-ms"] == "2000"
    assert rate.value.code == "rate_limit_exceeded" and rate.value.type == "rate_limit_error"
    with pytest.raises(openai.InternalServerError) as unavailable:
        await oai_create(oai, "onboarding", msgs, **fault("unavailable"))
    assert unavailable.value.status_code == 503
    with pytest.raises(openai.InternalServerError) as server:
        await oai_create(oai, "onboarding", msgs, **fault("server_error"))
    assert server.value.status_code == 500
    with pytest.raises(openai.AuthenticationError) as auth:
        await oai_create(oai, "onboarding", msgs, **fault("auth"))
    assert auth.value.code == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as ctx:
        await oai_create(oai, "onboarding", msgs, **fault("context_length"))
    assert ctx.value.code == "context_length_exceeded" and "128000" in ctx.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        await oai_create(oai, "gpt-nope", msgs)
    assert "onboarding" in missing.value.message and missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        await oai_create(oai, "onboarding", msgs, **fault("no_such_fault"))


async def test_openai_reply_faults(oai: openai.AsyncOpenAI) -> None:
    msgs = [{"role": "user", "content": TASK}]
    bad = await oai_create(oai, "onboarding", msgs, **fault("malformed_tool_json"))
    raw = bad.choices[0].message.tool_calls[0].function.arguments
    with pytest.raises(ValueError):
        json.loads(raw)
    rocket = await oai_create(oai, "onboarding", msgs, **fault("unknown_tool"))
    assert rocket.choices[0].message.tool_calls[0].function.name == "launch_rocket"
    refusal = await oai_create(oai, "onboarding", msgs, **fault("refusal"))
    assert refusal.choices[0].message.refusal and not refusal.choices[0].message.tool_calls
    start = time.monotonic()
    slow = await oai_create(oai, "onboarding", msgs, **fault("slow; seconds=0.3"))
    assert time.monotonic() - start >= 0.3 and slow.choices[0].message.tool_calls
    with pytest.raises(openai.APITimeoutError):
        await oai_create(oai, "onboarding", msgs, timeout=0.1, **fault("slow; seconds=0.5"))


async def test_anthropic_faults(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as rate:
        await claude_create(claude, "onboarding", **fault("rate_limit; retry_after=3"))
    assert rate.value.response.headers["retry-after"] == "3"
    assert rate.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    cases = [("unavailable", 503, "api_error"), ("overloaded", 529, "overloaded_error")]
    cases += [("server_error", 500, "api_error"), ("auth", 401, "authentication_error")]
    cases += [("context_length", 400, "invalid_request_error")]
    for name, status, kind in cases:
        with pytest.raises(anthropic.APIStatusError) as err:
            await claude_create(claude, "onboarding", **fault(name))
        assert (err.value.status_code, err.value.body["error"]["type"]) == (status, kind)  # type: ignore[index]
    assert "prompt is too long" in err.value.message
    with pytest.raises(anthropic.NotFoundError):
        await claude_create(claude, "claude-nope")
    bad = await claude_create(claude, "onboarding", **fault("malformed_tool_json"))
    assert bad.content[0].type == "tool_use" and isinstance(bad.content[0].input, str)
    rocket = await claude_create(claude, "onboarding", **fault("unknown_tool"))
    assert rocket.content[0].name == "launch_rocket"
    refusal = await claude_create(claude, "onboarding", **fault("refusal"))
    assert refusal.stop_reason == "refusal" and refusal.content[0].type == "text"


async def test_fault_times_and_key(oai: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    msgs = [{"role": "user", "content": TASK}]
    spec = fault("server_error; times=2; key=flaky-1")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await oai_create(oai, "onboarding", msgs, **spec)
    assert (await oai_create(oai, "onboarding", msgs, **spec)).choices[0].message.tool_calls
    queued = {"target": "bench", "fault": "rate_limit", "params": {"retry_after": 1}, "times": 1}
    assert (await http.post("/admin/faults", json=queued)).status_code == 201
    assert len((await http.get("/admin/faults")).json()["faults"]) == 1
    with pytest.raises(openai.RateLimitError):
        await oai_create(oai, "bench", msgs)
    assert (await oai_create(oai, "bench", msgs)).choices[0].message.tool_calls
    assert (await http.get("/admin/faults")).json()["faults"] == []
    assert (
        await http.post("/admin/faults", json={"target": "x", "fault": "nope"})
    ).status_code == 422


# --- company systems ---------------------------------------------------------------------------


async def _count(http: httpx.AsyncClient, action: str) -> int:
    return int((await http.get("/ledger/count", params={"action": action})).json()["count"])


async def test_idempotent_replay_and_conflict(http: httpx.AsyncClient) -> None:
    body = {"employee_id": "E200", "full_name": "Grace Brewster Hopper"}
    before = await _count(http, "create_mailbox")
    first = await http.post("/hr/mailboxes", json=body, headers={"Idempotency-Key": "mbx-200"})
    again = await http.post("/hr/mailboxes", json=body, headers={"Idempotency-Key": "mbx-200"})
    assert first.status_code == again.status_code == 201
    assert first.json()["address"] == "grace.brewster.hopper@acme.example"
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _count(http, "create_mailbox") == before + 1
    other = {**body, "full_name": "Someone Else"}
    conflict = await http.post("/hr/mailboxes", json=other, headers={"Idempotency-Key": "mbx-200"})
    assert conflict.status_code == 409 and "mbx-200" in conflict.json()["detail"]
    missing = await http.post("/hr/mailboxes", json=body)
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["detail"]
    invalid = await http.post("/it/laptops", json={"model": "x"}, headers={"Idempotency-Key": "k"})
    assert invalid.status_code == 422
    entries = (await http.get("/ledger", params={"action": "create_mailbox"})).json()["entries"]
    assert [e["response"] for e in entries if e["idempotency_key"] == "mbx-200"] == [first.json()]


async def test_concurrent_duplicates_apply_once(http: httpx.AsyncClient) -> None:
    body = {"employee_id": "E300", "model": "ThinkPad X1", "ship_to": "Berlin"}
    before = await _count(http, "order_laptop")
    replies = await asyncio.gather(
        *[
            http.post("/it/laptops", json=body, headers={"Idempotency-Key": "lap-300"})
            for _ in range(8)
        ]
    )
    assert {r.status_code for r in replies} == {201}
    assert len({r.json()["order_id"] for r in replies}) == 1
    assert replies[0].json()["status"] == "ordered"
    assert await _count(http, "order_laptop") == before + 1


async def test_commit_then_fail_then_retry(http: httpx.AsyncClient) -> None:
    body = {"to": "a@b.example", "subject": "hi", "body": "hello"}
    headers = {"Idempotency-Key": "mail-1", "x-sim-fault": "commit_then_fail; times=1; key=m1"}
    before = await _count(http, "send_email")
    failed = await http.post("/mail/messages", json=body, headers=headers)
    assert failed.status_code == 500
    assert await _count(http, "send_email") == before + 1
    retry = await http.post("/mail/messages", json=body, headers=headers)
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    assert await _count(http, "send_email") == before + 1


async def test_company_faults(http: httpx.AsyncClient) -> None:
    body = {"employee_id": "E400", "model": "M", "ship_to": "Paris"}
    limited = await http.post(
        "/it/laptops",
        json=body,
        headers={"Idempotency-Key": "lap-400", "x-sim-fault": "rate_limit; retry_after=4"},
    )
    assert limited.status_code == 429 and limited.headers["retry-after"] == "4"
    queued = {
        "target": "order_laptop",
        "fault": "delay",
        "params": {"seconds": 0.3, "when": "after"},
    }
    await http.post("/admin/faults", json=queued)
    with pytest.raises(httpx.ReadTimeout):
        await http.post(
            "/it/laptops", json=body, headers={"Idempotency-Key": "lap-400"}, timeout=0.1
        )
    await asyncio.sleep(0.3)
    done = await http.post("/it/laptops", json=body, headers={"Idempotency-Key": "lap-400"})
    assert done.status_code == 201 and done.headers["idempotent-replayed"] == "true"
    echo = await http.post("/tools/echo", json={"text": "ping"})
    assert echo.status_code == 200 and echo.json() == {"text": "ping"}
    assert (await http.get("/healthz")).json() == {"ok": True}


def test_free_port_and_restart(tmp_path: Path) -> None:
    assert 0 < free_port() < 65536
    server = SimServer(tmp_path / "again.db").start()
    try:
        assert httpx.get(server.url + "/healthz").json() == {"ok": True}
    finally:
        server.stop()


async def test_a_streamed_reply_is_the_same_reply_in_chunks_at_the_set_pace(
    oai: openai.AsyncOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stream: true`: the reply as chat.completion.chunk events (text in pieces of 16, tool
    calls whole, the usage when asked), read by the real client into the same completion; at
    DURABLE_AGENTS_SIM_STREAM_MS between chunks; cut_stream stops it half-way."""
    import time

    from openai.lib.streaming.chat import ChatCompletionStreamState

    words = [{"role": "user", "content": "Echo this back: " + "words " * 10}]
    whole = await oai_create(oai, "echo", words)
    text = whole.choices[0].message.content or ""
    assert len(text) > 32
    monkeypatch.setenv("DURABLE_AGENTS_SIM_STREAM_MS", "20")
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    pieces, started = [], time.monotonic()
    async for chunk in await oai_create(
        oai, "echo", words, stream=True, stream_options={"include_usage": True}
    ):
        state.handle_chunk(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    took = time.monotonic() - started
    final = state.get_final_completion()
    assert "".join(pieces) == text == final.choices[0].message.content
    assert all(len(p) <= 16 for p in pieces)
    assert (
        final.usage is not None and final.usage.completion_tokens == whole.usage.completion_tokens
    )
    assert took >= 0.02 * (len(pieces) - 1)  # at least the pace between chunks
    with pytest.raises(openai.APIError):
        async for _ in await oai_create(oai, "echo", words, stream=True, **fault("cut_stream")):
            pass

"""The support world (CRM, payments, tickets) and the `refund` script, over real HTTP.

What others rely on: fresh seeded customers per test, eligibility rules, holds that a refund
captures exactly once per Idempotency-Key, and a refund script that walks the saga one tool call
at a time and stops cleanly when an approver says no.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from sim.conversation import Conversation, ToolCall, Turn
from sim.refund_script import REFUND_STEPS, refund
from sim.runner import SimServer

PATHS = {
    "verify_customer": "/crm/verify",
    "check_refund_eligibility": "/payments/eligibility",
    "place_hold": "/payments/holds",
    "release_hold": "/payments/holds/release",
    "issue_refund": "/payments/refunds",
    "update_ticket": "/tickets/update",
}
READ_ONLY = {"verify_customer", "check_refund_eligibility"}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": n, "description": n, "parameters": {}}}
    for n in REFUND_STEPS
]
HAPPY = ["verify_customer", "check_refund_eligibility", "update_ticket", "place_hold"]
HAPPY += ["issue_refund", "update_ticket"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimServer]:
    with SimServer(tmp_path_factory.mktemp("sim-support") / "sim.db") as server:
        yield server


@pytest.fixture
def key() -> Any:
    """Fresh idempotency keys, all sharing one per-test prefix (to count ledger rows)."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    counter = iter(range(1000))

    def make(label: str = "") -> str:
        return f"{prefix}/{label or next(counter)}"

    make.prefix = prefix  # type: ignore[attr-defined]
    return make


async def seed(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await http.post("/admin/seed/order", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def post(
    http: httpx.AsyncClient, action: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await http.post(PATHS[action], json=body, headers=headers)


async def ledger(http: httpx.AsyncClient, prefix: str, action: str | None = None) -> list[Any]:
    params = {"action": action} if action else {}
    entries = (await http.get("/ledger", params=params)).json()["entries"]
    return [e for e in entries if e["idempotency_key"].startswith(prefix + "/")]


# --- seeding, CRM, eligibility -----------------------------------------------------------------


async def test_seed_creates_fresh_customer_order_and_ticket(http: httpx.AsyncClient) -> None:
    before = (await http.get("/ledger/count")).json()["count"]
    first = await seed(http)
    second = await seed(http, amount="99.5", purchased_days_ago=40, refundable=False)
    assert set(first) == {"customer_id", "name", "email", "order_id", "ticket_id", "amount"}
    assert re.fullmatch(r"C-[0-9a-f]{6}", first["customer_id"])
    assert re.fullmatch(r"O-[0-9a-f]{6}", first["order_id"])
    assert re.fullmatch(r"T-[0-9a-f]{6}", first["ticket_id"])
    assert first["amount"] == "250.00" and second["amount"] == "99.50"
    assert first["customer_id"] != second["customer_id"] and first["email"] != second["email"]
    ticket = (await http.get(f"/tickets/{first['ticket_id']}")).json()
    assert ticket["status"] == "open" and ticket["notes"] == []
    assert (ticket["customer_id"], ticket["order_id"]) == (first["customer_id"], first["order_id"])
    order = (await http.get(f"/payments/orders/{second['order_id']}")).json()
    assert order["refundable"] is False and order["refunded"] is False
    assert (await http.get("/ledger/count")).json()["count"] == before  # admin: not in the ledger
    bad = await http.post("/admin/seed/order", json={"amount": "1.234"})
    assert bad.status_code == 422
    assert (await http.get("/tickets/T-nope")).status_code == 404


async def test_verify_customer(http: httpx.AsyncClient) -> None:
    c = await seed(http)
    ok = await post(http, "verify_customer", {"customer_id": c["customer_id"], "email": c["email"]})
    assert ok.status_code == 200
    assert ok.json() == {"customer_id": c["customer_id"], "verified": True, "name": c["name"]}
    upper = {"customer_id": c["customer_id"], "email": " " + c["email"].upper()}
    assert (await post(http, "verify_customer", upper)).json()["verified"] is True
    wrong = {"customer_id": c["customer_id"], "email": "mallory@evil.example"}
    assert (await post(http, "verify_customer", wrong)).json() == {
        "customer_id": c["customer_id"],
        "verified": False,
        "name": None,
    }
    missing = await post(http, "verify_customer", {"customer_id": "C-000000", "email": "x@y.z"})
    assert missing.status_code == 404 and "C-000000" in missing.json()["detail"]


async def test_eligibility_rules(http: httpx.AsyncClient, key: Any) -> None:
    async def check(order_id: str, amount: str) -> dict[str, Any]:
        resp = await post(
            http, "check_refund_eligibility", {"order_id": order_id, "amount": amount}
        )
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    fresh = await seed(http, amount="250.00", purchased_days_ago=3)
    ok = await check(fresh["order_id"], "250")
    assert ok["eligible"] is True and ok["max_refundable"] == "250.00" and ok["reason"]
    over = await check(fresh["order_id"], "250.01")
    assert over["eligible"] is False and "exceeds" in over["reason"]
    assert over["max_refundable"] == "250.00"
    edge = await seed(http, purchased_days_ago=30)
    assert (await check(edge["order_id"], "10.00"))["eligible"] is True
    old = await seed(http, purchased_days_ago=31)
    too_old = await check(old["order_id"], "10.00")
    assert too_old["eligible"] is False and "30 days" in too_old["reason"]
    assert too_old["max_refundable"] == "0.00"
    final = await seed(http, refundable=False)
    assert "not refundable" in (await check(final["order_id"], "1.00"))["reason"]
    hold = await post(http, "place_hold", {"order_id": fresh["order_id"], "amount": "250"}, key())
    body = {"order_id": fresh["order_id"], "amount": "250.00", "hold_id": hold.json()["hold_id"]}
    assert (await post(http, "issue_refund", body, key())).status_code == 201
    done = await check(fresh["order_id"], "1.00")
    assert done["eligible"] is False and "already refunded" in done["reason"]
    assert done["max_refundable"] == "0.00"
    unknown = await post(http, "check_refund_eligibility", {"order_id": "O-x", "amount": "1"})
    assert unknown.status_code == 404
    for bad in ("1.234", "-5", "0", "abc"):
        resp = await post(http, "check_refund_eligibility", {"order_id": "O-x", "amount": bad})
        assert resp.status_code == 422, bad


# --- holds, refunds, tickets -------------------------------------------------------------------


async def test_hold_then_refund_happy_path(http: httpx.AsyncClient, key: Any) -> None:
    c = await seed(http, amount="120.50")
    order_id = c["order_id"]
    assert (
        await post(http, "place_hold", {"order_id": order_id, "amount": "120.5"})
    ).status_code == 400
    held = await post(http, "place_hold", {"order_id": order_id, "amount": "120.5"}, key("hold"))
    assert held.status_code == 201
    hold = held.json()
    assert set(hold) == {"hold_id", "order_id", "amount", "status"}
    assert (hold["order_id"], hold["amount"], hold["status"]) == (order_id, "120.50", "held")
    body = {"order_id": order_id, "amount": "120.50", "hold_id": hold["hold_id"]}
    refunded = await post(http, "issue_refund", body, key("refund"))
    assert refunded.status_code == 201
    refund = refunded.json()
    assert set(refund) == {"refund_id", "order_id", "amount", "status"}
    assert (refund["order_id"], refund["amount"], refund["status"]) == (
        order_id,
        "120.50",
        "refunded",
    )
    got = (await http.get(f"/payments/holds/{hold['hold_id']}")).json()
    assert got["status"] == "captured" and got["refund_id"] == refund["refund_id"]
    listed = (await http.get("/payments/refunds", params={"order_id": order_id})).json()
    assert [r["refund_id"] for r in listed["refunds"]] == [refund["refund_id"]]
    assert listed["refunds"][0]["hold_id"] == hold["hold_id"]
    order = (await http.get(f"/payments/orders/{order_id}")).json()
    assert order["refunded"] is True and order["refund_id"] == refund["refund_id"]
    # A second refund under a new key is refused, as is a new hold or releasing the captured one.
    again = await post(http, "issue_refund", body, key())
    assert again.status_code == 409 and "already refunded" in again.json()["detail"]
    new_hold = await post(http, "place_hold", {"order_id": order_id, "amount": "1.00"}, key())
    assert new_hold.status_code == 409
    release = await post(http, "release_hold", {"hold_id": hold["hold_id"]}, key())
    assert release.status_code == 409 and "captured" in release.json()["detail"]
    assert len(await ledger(http, key.prefix, "place_hold")) == 1
    assert len(await ledger(http, key.prefix, "issue_refund")) == 1
    assert len(await ledger(http, key.prefix)) == 2  # refusals store nothing
    assert (await http.get("/payments/holds/hold_nope")).status_code == 404


async def test_refund_after_release_is_refused(http: httpx.AsyncClient, key: Any) -> None:
    c = await seed(http)
    order_id = c["order_id"]
    hold = (await post(http, "place_hold", {"order_id": order_id, "amount": "250"}, key())).json()
    rel_key = key("release")
    released = await post(http, "release_hold", {"hold_id": hold["hold_id"]}, rel_key)
    assert released.status_code == 201
    assert released.json() == {"hold_id": hold["hold_id"], "status": "released"}
    replay = await post(http, "release_hold", {"hold_id": hold["hold_id"]}, rel_key)
    assert replay.json() == released.json() and replay.headers["idempotent-replayed"] == "true"
    twice = await post(http, "release_hold", {"hold_id": hold["hold_id"]}, key())
    assert twice.status_code == 201 and twice.json() == released.json()
    body = {"order_id": order_id, "amount": "250.00", "hold_id": hold["hold_id"]}
    refused = await post(http, "issue_refund", body, key())
    assert refused.status_code == 409 and "released" in refused.json()["detail"]
    unknown = await post(http, "release_hold", {"hold_id": "hold_nope"}, key())
    assert unknown.status_code == 404
    small = (await post(http, "place_hold", {"order_id": order_id, "amount": "100"}, key())).json()
    mismatch = {"order_id": order_id, "amount": "50.00", "hold_id": small["hold_id"]}
    assert (await post(http, "issue_refund", mismatch, key())).status_code == 422
    too_big = await post(http, "place_hold", {"order_id": order_id, "amount": "250.01"}, key())
    assert too_big.status_code == 422
    other = await seed(http)
    wrong_order = {"order_id": other["order_id"], "amount": "100.00", "hold_id": small["hold_id"]}
    assert (await post(http, "issue_refund", wrong_order, key())).status_code == 422
    assert (await http.get("/payments/refunds", params={"order_id": order_id})).json() == {
        "refunds": []
    }


async def test_refund_replay_with_same_key(http: httpx.AsyncClient, key: Any) -> None:
    c = await seed(http)
    hold = (
        await post(http, "place_hold", {"order_id": c["order_id"], "amount": "250"}, key())
    ).json()
    body = {"order_id": c["order_id"], "amount": "250.00", "hold_id": hold["hold_id"]}
    same = key("refund")
    replies = await asyncio.gather(*[post(http, "issue_refund", body, same) for _ in range(5)])
    assert {r.status_code for r in replies} == {201}
    assert len({r.json()["refund_id"] for r in replies}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in replies) == 4
    later = await post(http, "issue_refund", {**body, "amount": "250"}, same)  # same, normalized
    assert later.headers["idempotent-replayed"] == "true"
    assert len(await ledger(http, key.prefix, "issue_refund")) == 1
    refunds = (await http.get("/payments/refunds", params={"order_id": c["order_id"]})).json()
    assert len(refunds["refunds"]) == 1
    conflict = await post(http, "issue_refund", {**body, "amount": "1.00"}, same)
    assert conflict.status_code == 409


async def test_update_ticket(http: httpx.AsyncClient, key: Any) -> None:
    c = await seed(http)
    tid = c["ticket_id"]
    first = await post(
        http, "update_ticket", {"ticket_id": tid, "status": "refund_pending", "note": "a"}, key()
    )
    assert first.status_code == 201
    assert set(first.json()) == {"ticket_id", "status", "note_id"}
    await post(http, "update_ticket", {"ticket_id": tid, "status": "resolved", "note": "b"}, key())
    ticket = (await http.get(f"/tickets/{tid}")).json()
    assert ticket["status"] == "resolved"
    assert [(n["status"], n["note"]) for n in ticket["notes"]] == [
        ("refund_pending", "a"),
        ("resolved", "b"),
    ]
    assert ticket["notes"][0]["note_id"] == first.json()["note_id"]
    assert set(ticket["notes"][0]) == {"note_id", "status", "note", "created_at"}
    bad = await post(http, "update_ticket", {"ticket_id": tid, "status": "closed"}, key())
    assert bad.status_code == 422
    gone = await post(http, "update_ticket", {"ticket_id": "T-nope", "status": "open"}, key())
    assert gone.status_code == 404
    assert len(await ledger(http, key.prefix, "update_ticket")) == 2


async def test_support_faults_hit_actions_by_name(http: httpx.AsyncClient, key: Any) -> None:
    c = await seed(http)
    spec = {"target": "issue_refund", "fault": "commit_then_fail", "times": 1}
    await http.post("/admin/faults", json=spec)
    hold = (
        await post(http, "place_hold", {"order_id": c["order_id"], "amount": "250"}, key())
    ).json()
    body = {"order_id": c["order_id"], "amount": "250.00", "hold_id": hold["hold_id"]}
    failed = await post(http, "issue_refund", body, key("r"))
    assert failed.status_code == 500
    retried = await post(http, "issue_refund", body, key("r"))
    assert retried.status_code == 201 and retried.headers["idempotent-replayed"] == "true"
    limited = await http.post(
        "/crm/verify",
        json={"customer_id": c["customer_id"], "email": c["email"]},
        headers={"x-sim-fault": "rate_limit; retry_after=2"},
    )
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"


# --- the refund script through the real openai client ------------------------------------------


def task(c: dict[str, Any], reason: str | None = "Arrived broken") -> str:
    data = {k: c[k] for k in ("customer_id", "email", "order_id", "ticket_id", "amount")}
    if reason is not None:
        data["reason"] = reason
    return "Handle this refund request: " + json.dumps(data)


async def drive(
    oai: openai.AsyncOpenAI,
    http: httpx.AsyncClient,
    content: str,
    approval: dict[str, Any] | None = None,
    answer: str = "Wrong size",
) -> tuple[list[tuple[str, str, dict[str, Any]]], str]:
    """Play the agent loop: run each tool call (fakes for ask_human and a rejected approval)."""
    messages: list[Any] = [
        {"role": "system", "content": "You handle refunds."},
        {"role": "user", "content": content},
    ]
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for _ in range(10):
        resp = await oai.chat.completions.create(
            model="refund",
            messages=messages,
            tools=OPENAI_TOOLS,  # type: ignore[arg-type]
        )
        msg = resp.choices[0].message
        if not msg.tool_calls:
            assert resp.choices[0].finish_reason == "stop"
            return calls, msg.content or ""
        assert len(msg.tool_calls) == 1
        call = msg.tool_calls[0]
        name, args = call.function.name, json.loads(call.function.arguments)  # type: ignore[union-attr]
        calls.append((call.id, name, args))
        result: Any
        if name == "ask_human":
            result = {"answer": answer, "answered_by": "agent@support.example"}
        elif name == "issue_refund" and approval is not None:
            result = approval
        else:
            key = None if name in READ_ONLY else f"script/{uuid.uuid4().hex}/{call.id}"
            reply = await post(http, name, args, key)
            result = reply.json() if reply.is_success else {"error": reply.json()["detail"]}
        messages.append(msg.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    raise AssertionError("the refund script did not finish")


async def test_refund_script_approved(oai: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    c = await seed(http, amount="80.00")
    calls, text = await drive(oai, http, task(c))
    assert [n for _, n, _ in calls] == HAPPY
    assert [i for i, _, _ in calls] == [f"call_{i}_{n}" for i, (_, n, _) in enumerate(calls)]
    assert calls[1][2] == {"order_id": c["order_id"], "amount": "80.00"}
    assert calls[2][2] == {
        "ticket_id": c["ticket_id"],
        "status": "refund_pending",
        "note": "Refund of 80.00 requested: Arrived broken",
    }
    hold_args, refund_args = calls[3][2], calls[4][2]
    assert hold_args == {"order_id": c["order_id"], "amount": "80.00"}
    refunds = (await http.get("/payments/refunds", params={"order_id": c["order_id"]})).json()
    (refund_row,) = refunds["refunds"]
    assert refund_args["hold_id"] == refund_row["hold_id"]
    assert calls[5][2]["status"] == "resolved"
    assert calls[5][2]["note"] == f"Refunded 80.00 (refund {refund_row['refund_id']})."
    ticket = (await http.get(f"/tickets/{c['ticket_id']}")).json()
    assert ticket["status"] == "resolved" and len(ticket["notes"]) == 2
    assert "verified" in text and refund_row["hold_id"] in text
    assert refund_row["refund_id"] in text and "resolved" in text


async def test_refund_script_rejected(oai: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    c = await seed(http)
    rejected = {"approval": "rejected", "decided_by": "sam@acme.example", "reason": "over policy"}
    calls, text = await drive(oai, http, task(c), approval=rejected)
    assert [n for _, n, _ in calls] == HAPPY[:5]
    assert text == (
        "The refund of 250.00 was rejected by sam@acme.example: over policy. Nothing was refunded."
    )
    refunds = (await http.get("/payments/refunds", params={"order_id": c["order_id"]})).json()
    assert refunds == {"refunds": []}


async def test_refund_script_asks_for_a_missing_reason(
    oai: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    c = await seed(http, amount="12.00")
    calls, text = await drive(oai, http, task(c, reason=""), answer="Never delivered")
    names = [n for _, n, _ in calls]
    assert names == HAPPY[:2] + ["ask_human"] + HAPPY[2:]
    assert calls[2][2] == {
        "question": f"What is the customer's reason for the refund of 12.00 on order "
        f"{c['order_id']}?"
    }
    assert calls[3][2]["note"] == "Refund of 12.00 requested: Never delivered"
    assert "Never delivered" in text
    _, no_reason = await drive(oai, http, task(await seed(http), reason=None), answer="  ")
    assert "No one gave a reason" in no_reason


async def test_refund_script_stops_early(oai: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    c = await seed(http)
    calls, text = await drive(oai, http, task({**c, "email": "someone@else.example"}))
    assert [n for _, n, _ in calls] == ["verify_customer"]
    assert "could not be verified" in text and "nothing was done" in text
    old = await seed(http, purchased_days_ago=45)
    calls, text = await drive(oai, http, task(old))
    assert [n for _, n, _ in calls] == [
        "verify_customer",
        "check_refund_eligibility",
        "update_ticket",
    ]
    note = calls[2][2]
    assert note["status"] == "open" and note["note"].startswith("Refund not possible: order ")
    assert "not possible" in text
    ticket = (await http.get(f"/tickets/{old['ticket_id']}")).json()
    assert ticket["status"] == "open" and ticket["notes"][0]["note"] == note["note"]


# --- script branches without HTTP --------------------------------------------------------------

INPUT = {
    "customer_id": "C-1",
    "email": "a@b.c",
    "order_id": "O-1",
    "ticket_id": "T-1",
    "amount": "5",
    "reason": "r",
}


def conv(*steps: tuple[str, dict[str, Any], Any]) -> Conversation:
    """A conversation of (tool, args, result) steps; a str result is sent as raw text."""
    turns = [Turn("user", json.dumps(INPUT))]
    for i, (name, args, result) in enumerate(steps):
        call = ToolCall(name, args, f"call_{i}_{name}")
        text = result if isinstance(result, str) else json.dumps(result)
        turns += [Turn("assistant", tool_calls=[call]), Turn("tool", text, tool_call_id=call.id)]
    c = Conversation(turns=turns)
    c.link_tool_names()
    return c


PREFIX: list[tuple[str, dict[str, Any], Any]] = [
    ("verify_customer", {}, {"verified": True, "name": "Ada"}),
    ("check_refund_eligibility", {}, {"eligible": True}),
    ("update_ticket", {"status": "refund_pending"}, {"note_id": "n1"}),
    ("place_hold", {}, {"hold_id": "hold_1"}),
]


def test_refund_script_branches() -> None:
    first = refund(conv())
    assert first.tool_calls[0].name == "verify_customer"
    assert first.tool_calls[0].args == {"customer_id": "C-1", "email": "a@b.c"}
    retry = refund(conv(("verify_customer", {}, {"error": "down"})))
    assert retry.tool_calls[0].name == "verify_customer"
    twice = refund(
        conv(("verify_customer", {}, {"error": "down"}), ("verify_customer", {}, "Error"))
    )
    assert "failed twice" in twice.text and "Nothing was refunded" in twice.text
    assert refund(conv(*PREFIX)).tool_calls[0].args == {
        "order_id": "O-1",
        "amount": "5.00",
        "hold_id": "hold_1",
    }
    expired = refund(conv(*PREFIX, ("issue_refund", {}, {"approval": "expired"})))
    assert expired.text.startswith("The refund of 5.00 was rejected by ") and not expired.tool_calls
    failed = refund(conv(*PREFIX, ("issue_refund", {}, {"error": "hold is released"})))
    assert "could not be issued: hold is released" in failed.text and not failed.tool_calls
    done = [*PREFIX, ("issue_refund", {}, {"refund_id": "re_1"})]
    resolve = refund(conv(*done))
    assert resolve.tool_calls[0].args["status"] == "resolved"
    stuck = [("update_ticket", {"status": "resolved"}, {"error": "x"})] * 2
    assert "Refund re_1 was issued" in refund(conv(*done, *stuck)).text
    final = refund(conv(*done, ("update_ticket", {"status": "resolved"}, {"note_id": "n2"})))
    assert "re_1" in final.text and "hold_1" in final.text and not final.tool_calls
    repair = conv(*PREFIX[:2])
    repair.turns.append(Turn("user", "Your previous reply had invalid JSON; try again."))
    assert refund(repair).tool_calls[0].args["status"] == "refund_pending"

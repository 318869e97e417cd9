"""Agents as a user writes them, for a real model: each test gives a run the route of the
llama.cpp server it started (`openai-compatible:http://127.0.0.1:<port>/v1:smollm2`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, Field

from durable_agents import (
    AgentSet,
    AgentSpec,
    ApprovalPolicy,
    ApprovalRule,
    Directory,
    RunawayPolicy,
    ToolContext,
    tool,
)
from durable_agents.errors import ToolRejected

# llama.cpp's usual address; every run here names the server its test started.
ROUTE = "openai-compatible:http://127.0.0.1:8080/v1:smollm2"
INVOICES = {
    "INV-1": ("ACME GmbH", "120.00", "open"),
    "INV-2": ("Globex Ltd", "980.00", "open"),
}
# What pay_invoice paid, by idempotency key (the tool's system: this process's memory).
PAID: dict[str, tuple[str, str]] = {}


# Patterns in the input models become the JSON schema the server turns into a grammar for the
# arguments: a small model then writes `INV-7`, not a paragraph (it rambles in a free string
# until its context window is full).
Id = Annotated[str, Field(pattern=r"^INV-[0-9]{1,4}$")]
Amount = Annotated[str, Field(pattern=r"^[0-9]{1,6}[.][0-9]{2}$")]


class InvoiceId(BaseModel):
    invoice_id: Id


class Invoice(BaseModel):
    invoice_id: str
    vendor: str
    amount: str
    status: str


class Payment(BaseModel):
    invoice_id: Id
    amount: Amount


class Paid(BaseModel):
    invoice_id: str
    amount: str
    status: str


def _find(invoice_id: str) -> tuple[str, str, str]:
    found = INVOICES.get(invoice_id.strip().upper())
    if found is None:
        raise ToolRejected(f"no invoice {invoice_id!r}: ids are {', '.join(INVOICES)}")
    return found


@tool(side_effect="read_only", timeout=timedelta(seconds=10))
async def find_invoice(args: InvoiceId, ctx: ToolContext) -> Invoice:
    """Look an invoice up by its id (INV-1 or INV-2): its vendor, amount and status."""
    vendor, amount, status = _find(args.invoice_id)
    return Invoice(invoice_id=args.invoice_id.strip().upper(), vendor=vendor, amount=amount,
                   status=status)  # fmt: skip


@tool(side_effect="irreversible", scopes=("invoices:pay",), timeout=timedelta(seconds=10))
async def pay_invoice(args: Payment, ctx: ToolContext) -> Paid:
    """Pay an invoice: its id (INV-1 or INV-2) and its exact amount (e.g. 120.00)."""
    _, amount, _ = _find(args.invoice_id)
    if args.amount.strip() != amount:
        raise ToolRejected(f"invoice {args.invoice_id} is for {amount}, not {args.amount!r}")
    PAID.setdefault(ctx.idempotency_key, (args.invoice_id, amount))
    return Paid(invoice_id=args.invoice_id, amount=amount, status="paid")


# A small model's runs are short and cheap: a few turns, short replies, and a runaway is parked
# early (the same call twice, or three turns without a new successful one).
# Unstreamed: llama-cpp-python's server sends no usage with a stream.
SMALL = dict(
    live_text=False,
    max_turns=6,
    max_tokens=64,
    llm_timeout=timedelta(seconds=60),
    runaway=RunawayPolicy(max_repeats=2, max_idle_turns=3),
)

LOOKUP = AgentSpec(
    name="lookup",
    version="1",
    description="Looks an invoice up and says whose it is.",
    system_prompt=(
        "You look invoices up. Call find_invoice with the invoice id, then say in one line "
        "who the invoice is from and how much it is."
    ),
    model_route=(ROUTE,),
    tools=(find_invoice,),
    input_model=InvoiceId,
    **SMALL,  # type: ignore[arg-type]
)
PAYER = AgentSpec(
    name="payer",
    version="1",
    description="Pays an invoice once payables approve.",
    system_prompt=(
        "You pay invoices. Call pay_invoice with the invoice id and its amount, then say in "
        "one line what happened."
    ),
    model_route=(ROUTE,),
    tools=(pay_invoice,),
    input_model=Payment,
    approvals=ApprovalPolicy(
        rules=(ApprovalRule(tool="pay_invoice", description="money leaves", groups=("payables",)),),
        default_groups=("payables",),
    ),
    **SMALL,  # type: ignore[arg-type]
)


class Topic(BaseModel):
    topic: str


# Streams its words (no tools: llama-cpp-python cannot stream a reply whose tools it offered).
NARRATOR = AgentSpec(
    name="narrator",
    version="1",
    description="Tells a short story, streamed as it is written.",
    system_prompt="You are a storyteller. Tell a story about the topic you are given.",
    model_route=(ROUTE,),
    tools=(),
    input_model=Topic,
    max_tokens=48,
    live_text=True,
    llm_timeout=timedelta(seconds=60),
)


class Text(BaseModel):
    text: str


# Answers a text in a word; with a short context window (a server started with a small n_ctx) a
# long text does not fit, and nothing older can be compacted away.
SUMMARY = AgentSpec(
    name="summary",
    version="1",
    description="Says in a word what a text is about.",
    system_prompt="Say in one word what the text is about.",
    model_route=(ROUTE,),
    tools=(),
    input_model=Text,
    max_tokens=16,
    llm_timeout=timedelta(seconds=60),
    live_text=False,
)

# A short-lived model call: the failure tests wait for its retries, not for minutes.
ECHO = AgentSpec(
    name="echo",
    version="1",
    description="Answers a greeting.",
    system_prompt="Answer the greeting in a few words.",
    model_route=(ROUTE,),
    tools=(),
    input_model=Text,
    max_tokens=16,
    llm_timeout=timedelta(seconds=60),
    live_text=False,
)

PEOPLE = Directory(groups={"payables": frozenset({"olga"})})
AGENTS = AgentSet((LOOKUP, PAYER, NARRATOR, SUMMARY, ECHO), source="tests.model", directory=PEOPLE)

"""The company-system tools of the sim world (HR, IT, mail, the wiki): each one object, its
contract and its code, written as any user's tools are."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, EmailStr, Field

from durable_agents import ToolContext, tool
from sim.agents._http import post


class CreateMailboxInput(BaseModel):
    employee_id: str = Field(min_length=1)
    full_name: str = Field(min_length=1)


class CreateMailboxOutput(BaseModel):
    mailbox_id: str
    address: EmailStr


class OrderLaptopInput(BaseModel):
    employee_id: str = Field(min_length=1)
    model: str = Field(default="standard-14")
    ship_to: str = Field(min_length=1, description="Postal address for delivery.")


class OrderLaptopOutput(BaseModel):
    order_id: str
    status: str
    eta: date


class SendEmailInput(BaseModel):
    to: EmailStr
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)


class SendEmailOutput(BaseModel):
    message_id: str
    status: str


@tool(side_effect="reversible", timeout=timedelta(seconds=20), scopes=("hr:write",), audience="hr")
async def create_mailbox(args: CreateMailboxInput, ctx: ToolContext) -> CreateMailboxOutput:
    """Create the company mailbox for an employee. Returns its address."""
    return await post("/hr/mailboxes", args, ctx)


@tool(side_effect="reversible", timeout=timedelta(seconds=30), scopes=("it:write",), audience="it")
async def order_laptop(args: OrderLaptopInput, ctx: ToolContext) -> OrderLaptopOutput:
    """Order a laptop for an employee, shipped to the given address."""
    return await post("/it/laptops", args, ctx)


@tool(
    side_effect="irreversible",
    timeout=timedelta(seconds=20),
    scopes=("mail:send",),
    audience="mail",
)
async def send_email(args: SendEmailInput, ctx: ToolContext) -> SendEmailOutput:
    """Send an email. Write the subject and body yourself."""
    return await post("/mail/messages", args, ctx)


class EchoInput(BaseModel):
    text: str


class EchoOutput(BaseModel):
    text: str


@tool(side_effect="read_only", timeout=timedelta(seconds=10))
async def echo(args: EchoInput, ctx: ToolContext) -> EchoOutput:
    """Echo the text back (a read-only probe used by the benchmark agent)."""
    return await post("/tools/echo", args, ctx)


class ReadDocumentInput(BaseModel):
    doc_id: str = Field(min_length=1)
    chars: int = Field(default=2000, ge=0, le=20_000_000)


class ReadDocumentOutput(BaseModel):
    doc_id: str
    text: str


@tool(side_effect="read_only", timeout=timedelta(seconds=20), scopes=("wiki:read",))
async def read_document(args: ReadDocumentInput, ctx: ToolContext) -> ReadDocumentOutput:
    """Read a document of the company wiki by id (the first `chars` characters)."""
    return await post("/docs/read", args, ctx)

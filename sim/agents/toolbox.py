"""Contracts of the company-system tools (HR, IT, mail). Implementations: activities/company.py."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, EmailStr, Field

from durable_agents._spec import ToolContract
from sim.agents.support_tools import SUPPORT_TOOLS


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


CREATE_MAILBOX = ToolContract(
    name="create_mailbox",
    description="Create the company mailbox for an employee. Returns its address.",
    input_model=CreateMailboxInput,
    output_model=CreateMailboxOutput,
    side_effect="reversible",
    timeout=timedelta(seconds=20),
    required_scopes=("hr:write",),
)

ORDER_LAPTOP = ToolContract(
    name="order_laptop",
    description="Order a laptop for an employee, shipped to the given address.",
    input_model=OrderLaptopInput,
    output_model=OrderLaptopOutput,
    side_effect="reversible",
    timeout=timedelta(seconds=30),
    required_scopes=("it:write",),
)

SEND_EMAIL = ToolContract(
    name="send_email",
    description="Send an email. Write the subject and body yourself.",
    input_model=SendEmailInput,
    output_model=SendEmailOutput,
    side_effect="irreversible",
    timeout=timedelta(seconds=20),
    required_scopes=("mail:send",),
)


class EchoInput(BaseModel):
    text: str


class EchoOutput(BaseModel):
    text: str


ECHO = ToolContract(
    name="echo",
    description="Echo the text back (a read-only probe used by the benchmark agent).",
    input_model=EchoInput,
    output_model=EchoOutput,
    side_effect="read_only",
    timeout=timedelta(seconds=10),
)


class ReadDocumentInput(BaseModel):
    doc_id: str = Field(min_length=1)
    chars: int = Field(default=2000, ge=0, le=20_000_000)


class ReadDocumentOutput(BaseModel):
    doc_id: str
    text: str


READ_DOCUMENT = ToolContract(
    name="read_document",
    description="Read a document of the company wiki by id (the first `chars` characters).",
    input_model=ReadDocumentInput,
    output_model=ReadDocumentOutput,
    side_effect="read_only",
    timeout=timedelta(seconds=20),
    required_scopes=("wiki:read",),
)

# Every activity-run tool a worker can execute, by name.
TOOL_CONTRACTS: dict[str, ToolContract] = {
    t.name: t
    for t in (CREATE_MAILBOX, ORDER_LAPTOP, SEND_EMAIL, ECHO, READ_DOCUMENT, *SUPPORT_TOOLS)
}

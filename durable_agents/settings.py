"""`Settings`: every `DURABLE_AGENTS_*` variable, validated once, in one object.

A worker (`agentctl worker`, or `DurableAgentsPlugin(settings=...)` on your own) and the CLI
build it once at start and hand it on; activities read the settings of the worker that runs
them (`current()`), never the environment. Tests and embedders build their own:

    settings = Settings(state_dir=tmp, oidc_url="https://login.example.com/realms/acme")
    Worker(client, task_queue="agents", plugins=[DurableAgentsPlugin(AGENTS, settings=settings)])

A bad value stops the process at start with `SettingsError`, naming the variable and what fits.
Nothing here names a particular identity provider, model server or company system: where a
setting is unset, what needs it says so when it is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from durable_agents._routes import ModelProvider
from durable_agents.errors import SettingsError

PREFIX = "DURABLE_AGENTS_"


class Settings(BaseSettings):
    """`DURABLE_AGENTS_*` variables, plus the providers' own key variables."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    # --- where runs live --------------------------------------------------------------------
    state_dir: Path = Path(".state")
    task_queue: str = "durable-agents"
    # The Worker Deployment workers join (versioning on; runs pinned to the version that started
    # them, upgraded at turn boundaries); None: no versioning. The build id is the code's
    # checksum unless `build_id` names one (workers/main.py).
    deployment: str | None = None
    build_id: str | None = None
    # Plugins beyond the installed entry points: `module[:attr],…` (durable_agents.discover).
    plugins: str = ""

    # --- models -----------------------------------------------------------------------------
    # Model servers by name, as JSON: {"gateway": {"wire": "openai", "base_url":
    # "https://llm.internal/v1", "api_key_env": "GATEWAY_KEY"}}; routes `gateway:<model>`.
    # Plugins may name their own (AgentSet(providers=...)); these win.
    model_providers: Annotated[dict[str, ModelProvider], NoDecode] = Field(default_factory=dict)
    # Where an openai-compatible route may send a conversation: comma-separated base URLs;
    # unset, the worker's own machine only (durable_agents._routes.allowed_endpoints).
    model_endpoints: str | None = None
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    # Circuit breaker per provider and model (activities/circuit.py); threshold 0 disables it.
    breaker_threshold: int = Field(default=5, ge=0)
    breaker_cooldown_seconds: float = Field(default=30.0, ge=0)
    # Live text (activities/live_text.py): milliseconds a streamed reply may take to be whole
    # before its words go on the run's live stream (a faster one's step carries them).
    live_text_after_ms: int = Field(default=100, ge=0, le=60_000)

    # --- people and agents' identities --------------------------------------------------------
    # The OpenID provider people sign in at and whose proofs workers take (its discovery
    # document is at <oidc_url>/.well-known/openid-configuration); the public client agentctl
    # signs in as; the audience of the proofs workers take.
    oidc_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    oidc_client_id: str = "agentctl"
    proof_audience: str = "durable-agents"
    # Where `agentctl login` keeps people's tokens (mode 0600), per Temporal profile; default
    # $XDG_CONFIG_HOME/durable-agents/signin.json.
    signin_file: Path | None = None
    # Agents' own tokens (activities/identity.py): the identity provider's token endpoint, and
    # each agent's client there: a TOML file of [agent] or ["agent@version"] tables with
    # client_id and client_secret or client_secret_file (default <state_dir>/credentials.toml).
    idp_token_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    credentials_file: Path | None = None

    # --- records ------------------------------------------------------------------------------
    # The message store (activities/store.py): sqlite:////path (default
    # <state_dir>/store.sqlite3) or redis://host:port/db for workers on several machines.
    store_url: str | None = None
    audit_path: Path | None = None  # the audit log (default <state_dir>/audit.sqlite3)
    # One audit log for many machines: postgresql://user:password@host:port/db (psycopg 3).
    audit_url: SecretStr | None = None
    # Where `agentctl audit --against-systems` reads the systems' own record of effects:
    # comma-separated base URLs serving GET /ledger?run=RUN.
    system_ledgers: str | None = None
    # Tool results larger than this (bytes of JSON) fail with PayloadTooLarge even by reference.
    max_tool_result_bytes: int = Field(default=8_000_000, ge=1_000)
    # Payload encryption (durable_agents._codec): `id=<base64 32 bytes>,…` (the first encrypts),
    # or a file of them; and the token `agentctl codec-server` asks of the UI.
    codec_keys: SecretStr | None = None
    codec_keys_file: Path | None = None
    codec_token: SecretStr | None = None

    # --- the worker process (workers/main.py) ---------------------------------------------------
    # Runs kept in memory between their tasks (the SDK's max_cached_workflows; unset, its
    # default: 1,000). A waiting run costs about 200 KB there; one out of the cache costs
    # nothing and replays its history at its next task.
    max_cached_workflows: int | None = Field(default=None, ge=0)
    # Seconds a run's next task waits for the worker that has it cached before any worker takes
    # it: how long a run held by a killed worker waits (the SDK's default is 10 s).
    sticky_timeout_s: float = Field(default=5.0, gt=0, le=600)
    # Seconds a starting worker keeps trying to reach its Temporal server (compose, systemd).
    connect_wait: float = Field(default=30.0, ge=0)
    # Telemetry (workers/telemetry.py): tracing console|otlp|off; Prometheus metrics on
    # host:port (or off); log lines json|text. Unset: each process's own default.
    tracing: Literal["console", "otlp", "off"] | None = None
    metrics_address: str | None = None
    log_format: Literal["json", "text"] | None = None

    # --- the CLI ----------------------------------------------------------------------------------
    # The Temporal UI runs link to (unset: what `agentctl server` announced in
    # <state_dir>/server.json for the server the CLI talks to, else http://127.0.0.1:8233).
    ui_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    # Seconds an operator waits for a server that accepts connections but does not answer, and
    # for a run's answer to a query (queries need a worker).
    connect_timeout: float = Field(default=5.0, gt=0, le=300)
    query_timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator(
        "max_cached_workflows",
        "sticky_timeout_s",
        "connect_wait",
        "tracing",
        "metrics_address",
        "log_format",
        "ui_url",
        "oidc_url",
        "idp_token_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise PydanticUseDefault()
        return value

    @field_validator("tracing", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("model_providers", mode="before")
    @classmethod
    def _providers_json(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"not JSON ({exc.msg}): write "
                    '{"name": {"wire": "openai", "base_url": "http://…/v1"}}'
                ) from None
        return value

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """The settings of this process's environment (and `overrides`), validated: a bad value
        is a `SettingsError` naming the variable and what fits."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None

    @property
    def identity_provider(self) -> str | None:
        return self.oidc_url.rstrip("/") if self.oidc_url else None

    @property
    def credentials_path(self) -> Path:
        return self.credentials_file or self.state_dir / "credentials.toml"


def _explain(exc: ValidationError) -> str:
    """Which variables are wrong and why, one clause each (values cut short, secrets not shown)."""
    wrong = []
    aliases = {f.validation_alias: f for f in Settings.model_fields.values()}
    for error in exc.errors(include_url=False):
        loc = str(error["loc"][0]) if error["loc"] else "?"
        field = aliases.get(loc) or Settings.model_fields.get(loc)
        variable = loc if loc in aliases else PREFIX + loc.upper()
        variable += "".join(
            f"[{part}]" if i == 0 else f".{part}" for i, part in enumerate(error["loc"][1:])
        )
        secret = field is not None and "SecretStr" in str(field.annotation)
        shown = "(not shown)" if secret else repr(str(error.get("input", "")))[:60]
        wrong.append(f"{variable}={shown}: {error['msg']}")
    return (
        f"{'; '.join(wrong)}. Fix the variable, or unset it for its default "
        "(durable_agents/settings.py says what each one does)."
    )


# --- whose settings apply -------------------------------------------------------------------------

_current: ContextVar[Settings | None] = ContextVar("durable_agents_settings", default=None)


def current() -> Settings:
    """The settings in force: the worker's, inside its activities (the plugin sets them); else
    those given to `use` (agentctl sets its own per command); else the environment's, read now.
    Nothing is cached at module level: there is nothing to reset."""
    return _current.get() or Settings.from_env()


@contextmanager
def use(settings: Settings) -> Iterator[Settings]:
    """Run the block (and the tasks it starts) with `settings` in force."""
    token = _current.set(settings)
    try:
        yield settings
    finally:
        _current.reset(token)

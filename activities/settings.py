"""Worker-side settings, read from the environment (never from workflow input or history)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, SettingsConfigDict

from durable_agents.errors import SettingsError

PREFIX = "DURABLE_AGENTS_"


class Settings(BaseSettings):
    """`DURABLE_AGENTS_*` variables, plus the providers' own key variables."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    sim_url: str = "http://127.0.0.1:8787"
    company_url: str | None = None  # the company systems; the sim's by default
    # Where the systems' own record of effects is read (`agentctl audit --against-systems`):
    # comma-separated base URLs serving GET /ledger?run=RUN; the company systems' by default.
    system_ledgers: str | None = None
    state_dir: Path = Path(".state")
    task_queue: str = "durable-agents"
    # The Temporal UI the CLI links runs to (unset: what `agentctl server` announced in
    # <state_dir>/server.json for the server the CLI talks to, else http://127.0.0.1:8233).
    ui_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    # The Worker Deployment workers join (versioning on; runs pinned to the version that started
    # them, upgraded at turn boundaries); None: no versioning. The build id is the code's
    # checksum unless DURABLE_AGENTS_BUILD_ID names one (workers/main.py).
    deployment: str | None = None
    # Where an openai-compatible route may send a conversation: comma-separated base URLs;
    # unset, the worker's own machine only (durable_agents._routes.allowed_endpoints).
    model_endpoints: str | None = None
    # The message store (activities/store.py): sqlite:////path (default <state_dir>/store.sqlite3)
    # or redis://host:port/db for workers on several machines.
    store_url: str | None = None
    # Agent identities (activities/identity.py): the identity provider's token endpoint (the
    # sim's, <sim_url>/idp/token, by default), and each agent's client there: a TOML file of
    # [agent] or ["agent@version"] tables with client_id and client_secret or
    # client_secret_file (default <state_dir>/credentials.toml).
    idp_token_url: str | None = None
    credentials_file: Path | None = None
    # People's sign-in and proofs: the OpenID provider (its discovery document is at
    # <oidc_url>/.well-known/openid-configuration; the sim's, <sim_url>/idp, by default), the
    # public client agentctl signs in as, and the audience of the proofs workers take.
    oidc_url: str | None = None
    oidc_client_id: str = "agentctl"
    proof_audience: str = "durable-agents"
    # Where `agentctl login` keeps people's tokens (mode 0600), per Temporal profile; default
    # $XDG_CONFIG_HOME/durable-agents/signin.json.
    signin_file: Path | None = None
    audit_path: Path | None = None  # the audit log (default <state_dir>/audit.sqlite3)
    # One audit log for many machines: postgresql://user:password@host:port/db (psycopg 3).
    audit_url: SecretStr | None = None
    # Tool results larger than this (bytes of JSON) fail with PayloadTooLarge even by reference.
    max_tool_result_bytes: int = Field(default=8_000_000, ge=1_000)
    # Circuit breaker per provider and model (activities/circuit.py); threshold 0 disables it.
    breaker_threshold: int = Field(default=5, ge=0)
    breaker_cooldown_seconds: float = Field(default=30.0, ge=0)
    # The worker process (workers/main.py): runs kept in memory between their tasks (the SDK's
    # max_cached_workflows; unset, its default: 1,000). A waiting run costs about 200 KB there;
    # one out of the cache costs nothing and replays its history at its next task.
    max_cached_workflows: int | None = Field(default=None, ge=0)
    # Seconds a run's next task waits for the worker that has it cached before any worker takes
    # it: how long a run held by a killed worker waits (the SDK's default is 10 s).
    sticky_timeout_s: float = Field(default=5.0, gt=0, le=600)
    # Seconds a starting worker keeps trying to reach its Temporal server (compose, systemd).
    connect_wait: float = Field(default=30.0, ge=0)
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")

    @field_validator("max_cached_workflows", "sticky_timeout_s", "connect_wait", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise PydanticUseDefault()
        return value

    @property
    def company_base_url(self) -> str:
        return (self.company_url or self.sim_url).rstrip("/")

    @property
    def token_url(self) -> str:
        return self.idp_token_url or self.sim_url.rstrip("/") + "/idp/token"

    @property
    def identity_provider(self) -> str:
        return (self.oidc_url or self.sim_url.rstrip("/") + "/idp").rstrip("/")

    @property
    def credentials_path(self) -> Path:
        return self.credentials_file or self.state_dir / "credentials.toml"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    """Which variables are wrong and why, one clause each (values cut short, secrets not shown)."""
    wrong = []
    aliases = {f.validation_alias: f for f in Settings.model_fields.values()}
    for error in exc.errors(include_url=False):
        loc = str(error["loc"][0]) if error["loc"] else "?"
        field = aliases.get(loc) or Settings.model_fields.get(loc)
        variable = loc if loc in aliases else PREFIX + loc.upper()
        secret = field is not None and "SecretStr" in str(field.annotation)
        shown = "(not shown)" if secret else repr(str(error.get("input", "")))[:60]
        wrong.append(f"{variable}={shown}: {error['msg']}")
    return (
        f"{'; '.join(wrong)}. Fix the variable, or unset it for its default "
        "(activities/settings.py says what each one does)."
    )

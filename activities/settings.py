"""Worker-side settings, read from the environment (never from workflow input or history)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """`DURABLE_AGENTS_*` variables, plus the providers' own key variables."""

    model_config = SettingsConfigDict(env_prefix="DURABLE_AGENTS_", extra="ignore")

    sim_url: str = "http://127.0.0.1:8787"
    company_url: str | None = None  # the company systems; the sim's by default
    # Where the systems' own record of effects is read (`agentctl audit --against-systems`):
    # comma-separated base URLs serving GET /ledger?run=RUN; the company systems' by default.
    system_ledgers: str | None = None
    state_dir: Path = Path(".state")
    task_queue: str = "durable-agents"
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
    audit_path: Path | None = None  # the audit log (default <state_dir>/audit.sqlite3)
    # One audit log for many machines: postgresql://user:password@host:port/db (psycopg 3).
    audit_url: SecretStr | None = None
    # Tool results larger than this (bytes of JSON) fail with PayloadTooLarge even by reference.
    max_tool_result_bytes: int = Field(default=8_000_000, ge=1_000)
    # Circuit breaker per provider and model (activities/circuit.py); threshold 0 disables it.
    breaker_threshold: int = Field(default=5, ge=0)
    breaker_cooldown_seconds: float = Field(default=30.0, ge=0)
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")

    @property
    def company_base_url(self) -> str:
        return (self.company_url or self.sim_url).rstrip("/")

    @property
    def token_url(self) -> str:
        return self.idp_token_url or self.sim_url.rstrip("/") + "/idp/token"

    @property
    def credentials_path(self) -> Path:
        return self.credentials_file or self.state_dir / "credentials.toml"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""The sim world's own settings: where its servers are, read from the environment.

    DURABLE_AGENTS_SIM_URL       the sim (models, company systems, identity provider, MCP);
                                 http://127.0.0.1:8787 by default
    DURABLE_AGENTS_COMPANY_URL   the company systems the sim's tools call, if not the sim's
    DURABLE_AGENTS_SIM_STREAM_MS the pace of streamed replies: milliseconds between chunks

The product's `Settings` knows nothing of the sim; these are the sim's, under the same
`DURABLE_AGENTS_` prefix so one environment configures a worker and the sim's agents it serves.
Read when needed (`current()`), never cached: a test or a demo that points them elsewhere is
heard at the next call.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from durable_agents.errors import SettingsError

PREFIX = "DURABLE_AGENTS_"
DEFAULT_URL = "http://127.0.0.1:8787"
URL = r"^https?://\S+$"


class SimSettings(BaseSettings):
    """`DURABLE_AGENTS_SIM_URL` and `DURABLE_AGENTS_COMPANY_URL`."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    sim_url: str = Field(default=DEFAULT_URL, pattern=URL)
    company_url: str | None = Field(default=None, pattern=URL)
    # Streamed replies (`stream: true`): milliseconds between chunks of STREAM_CHUNK characters
    # (DURABLE_AGENTS_SIM_STREAM_MS; 0: as fast as the connection goes).
    sim_stream_ms: float = Field(default=0.0, ge=0, le=10_000)

    @property
    def base_url(self) -> str:
        """The sim's address, with no trailing slash."""
        return self.sim_url.rstrip("/")

    @property
    def company_base_url(self) -> str:
        """Where the sim's tools send their calls: the company systems, the sim's by default."""
        return (self.company_url or self.sim_url).rstrip("/")


def current() -> SimSettings:
    """The sim's settings of this process's environment, read now; a value that does not fit is
    a `SettingsError` naming the variable."""
    try:
        return SimSettings()
    except ValidationError as exc:
        wrong = "; ".join(
            f"{PREFIX}{str(e['loc'][0]).upper()}={str(e.get('input', ''))[:60]!r}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise SettingsError(f"{wrong} (an http:// or https:// URL fits)") from None

"""The settings that put a worker or agentctl in a sim world: the product knows no sim, so its
models, identity provider and systems reach it as configuration, as any company's would."""

from __future__ import annotations

import json
from pathlib import Path


def world(url: str, credentials: Path | str | None = None) -> dict[str, str]:
    """The settings that put a worker or the CLI in the sim world at `url` (the product knows no
    sim: its models, identity provider and systems are configuration, as any company's are)."""
    providers = {
        "sim-openai": {"wire": "openai", "base_url": f"{url}/v1"},
        "sim-anthropic": {"wire": "anthropic", "base_url": url},
    }
    env = {
        "DURABLE_AGENTS_SIM_URL": url,  # the sim's own agents' systems (its own setting)
        "DURABLE_AGENTS_MODEL_PROVIDERS": json.dumps(providers),
        "DURABLE_AGENTS_OIDC_URL": f"{url}/idp",
        "DURABLE_AGENTS_IDP_TOKEN_URL": f"{url}/idp/token",
        "DURABLE_AGENTS_SYSTEM_LEDGERS": url,
    }
    if credentials is not None:
        env["DURABLE_AGENTS_CREDENTIALS_FILE"] = str(credentials)
    return env

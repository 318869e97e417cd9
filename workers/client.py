"""One way to reach Temporal everywhere: `TEMPORAL_*` variables and profiles via envconfig."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfig

from durable_agents.errors import ServerUnreachable

if TYPE_CHECKING:
    from temporalio.runtime import Runtime

    from durable_agents.settings import Settings

DEFAULT_ADDRESS = "127.0.0.1:7233"


def connect_config(address: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    return config


async def connect(
    address: str | None = None,
    namespace: str | None = None,
    wait_seconds: float = 0,
    runtime: Runtime | None = None,
    settings: Settings | None = None,
) -> Client:
    """Connect with the pydantic converter; keep trying for `wait_seconds` (server starting)."""
    # Imported here: the CLI reads `connect_config` without loading telemetry and retries.
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

    from durable_agents._codec import data_converter
    from durable_agents.workers import telemetry

    config = connect_config(address, namespace)
    converter = data_converter(settings=settings)  # encrypted when the settings name keys
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(wait_seconds),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception_type(RuntimeError),
            reraise=True,
        ):
            with attempt:
                return await Client.connect(
                    **config,
                    data_converter=converter,
                    interceptors=telemetry.interceptors(),  # tracing, once set up
                    runtime=runtime,
                )
    except RuntimeError as exc:
        target = config["target_host"]
        raise ServerUnreachable(
            f"cannot reach the Temporal server at {target} ({exc}). Start one with "
            "`agentctl server` (or `make demo`), or set TEMPORAL_ADDRESS to a running server."
        ) from None
    raise AssertionError("unreachable")

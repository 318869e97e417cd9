"""Every error of ours has one root, configuration errors one branch, and the CLI knows them by
type (not from a table of modules): an error a plugin defines under the root is shown as one
line with exit 1, like ours."""

from __future__ import annotations

import inspect

import pytest
import typer
from temporalio.exceptions import ApplicationError

import durable_agents
from durable_agents import errors
from durable_agents.errors import ConfigurationError, DurableAgentsError, FailureType
from durable_agents.starters.common import call_sync


def test_every_error_has_the_one_root() -> None:
    raised = [v for _, v in inspect.getmembers(errors, inspect.isclass) if issubclass(v, Exception)]
    assert len(raised) >= 20
    assert all(issubclass(kind, DurableAgentsError) for kind in raised)
    for name in ("SettingsError", "CodecConfigError", "CatalogError", "MCPConfigError"):
        assert issubclass(getattr(errors, name), ConfigurationError), name
    # The top-level names are the same classes, not copies.
    assert durable_agents.CatalogError is errors.CatalogError
    assert durable_agents.ToolRejected is errors.ToolRejected


def test_the_failure_taxonomy_is_public_and_its_members_are_the_wire_names() -> None:
    assert FailureType.RATE_LIMITED == "RateLimited"
    failure = ApplicationError("busy", type=FailureType.RATE_LIMITED)
    assert failure.type == "RateLimited"
    assert {t.value for t in FailureType} >= {"ContextWindowExceeded", "ToolRejected"}


class PluginMisconfigured(ConfigurationError):
    """An error a user's plugin defines."""


def test_the_cli_shows_an_error_under_the_root_as_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken() -> None:
        raise PluginMisconfigured("the invoice plugin needs INVOICE_URL:\nset it")

    with pytest.raises(typer.Exit) as exit_:
        call_sync(broken)
    assert exit_.value.exit_code == 1
    assert capsys.readouterr().err == "error: the invoice plugin needs INVOICE_URL: set it\n"


def test_an_error_outside_the_root_is_not_dressed_up() -> None:
    with pytest.raises(KeyError):
        call_sync(lambda: {}["x"])

"""Budgets: what a run may spend (tokens, money, time) and what happens at the limit.

Costs come from a model table (USD per million tokens, and each model's context window), loaded
from TOML files: the table shipped with durable-agents (`durable_agents/models.toml`), extended
or overridden by a deployment's own file; a spec may add its own prices too. Usage is what the
providers report. Money is Decimal, never float.

A budget with a cost limit never counts a model it has no price for as free: `Budget.cost`
raises `UnknownPrice` (fail closed); `Budget.check_priced` says so before a run starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from durable_agents import _toml
from durable_agents._vocab.schemas import BudgetOverride
from durable_agents.errors import ModelTableError, UnknownPrice

MILLION = Decimal(1_000_000)
_MODEL_KEYS = ("input_per_million", "output_per_million", "context_window")


@dataclass(frozen=True)
class ModelInfo:
    """What the table knows of one model; each part is optional."""

    input_per_million: Decimal | None = None
    """USD per million input tokens."""
    output_per_million: Decimal | None = None
    """USD per million output tokens."""
    context_window: int | None = None
    """The model's context window in tokens (compaction starts at a share of it)."""

    def over(self, base: ModelInfo) -> ModelInfo:
        """This entry laid over `base`: what this one states wins, the rest comes from base."""
        return ModelInfo(
            input_per_million=(
                self.input_per_million
                if self.input_per_million is not None
                else base.input_per_million
            ),
            output_per_million=(
                self.output_per_million
                if self.output_per_million is not None
                else base.output_per_million
            ),
            context_window=(
                self.context_window if self.context_window is not None else base.context_window
            ),
        )


@dataclass(frozen=True)
class ModelTable:
    """Prices and context windows by model name (the model part of a route: `gpt-4.1` in
    `openai:gpt-4.1`). Immutable after loading: lookups are deterministic in workflows."""

    models: Mapping[str, ModelInfo] = field(default_factory=dict, hash=False)
    """Each model's entry, by model name."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "models", MappingProxyType({m: self.models[m] for m in sorted(self.models)})
        )

    @classmethod
    def load(cls, path: str | Path) -> ModelTable:
        """Read and check a model table file; any problem is a ModelTableError of one line."""
        data = _toml.read(path, ModelTableError, "the model table")
        return cls.from_mapping(data, where=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "model table") -> ModelTable:
        """A table from parsed TOML (or any mapping of that shape), checked as `load` does;
        `where` names the source in error messages."""
        unknown = sorted(set(data) - {"models"})
        if unknown:
            raise ModelTableError(
                f"{where}: unknown key {unknown[0]!r}: a model table has only "
                '[models."<name>"] tables'
            )
        raw = data.get("models", {})
        if not isinstance(raw, Mapping):
            raise ModelTableError(
                f'{where}: models: must be tables ([models."<name>"]), not {type(raw).__name__}'
            )
        return cls({name: _entry(where, name, value) for name, value in raw.items()})

    def merged(self, other: ModelTable) -> ModelTable:
        """This table extended by `other`; where both state something of a model, `other`
        wins (a deployment's file overrides the shipped prices)."""
        models = dict(self.models)
        for name, info in other.models.items():
            models[name] = info.over(models[name]) if name in models else info
        return ModelTable(models)

    def price(self, model: str) -> tuple[Decimal, Decimal] | None:
        """(input, output) USD per million tokens, or None if the table has no price."""
        info = self.models.get(model)
        if info is None or info.input_per_million is None or info.output_per_million is None:
            return None
        return info.input_per_million, info.output_per_million

    def context_window(self, model: str) -> int | None:
        info = self.models.get(model)
        return info.context_window if info else None


def _entry(where: str, name: object, value: object) -> ModelInfo:
    key = f"models.{name!r}" if isinstance(name, str) else f"models.{name}"
    if not isinstance(name, str) or not name or name != name.strip():
        raise ModelTableError(f"{where}: {key}: a model name must be non-empty, without spaces")
    if not isinstance(value, Mapping):
        raise ModelTableError(
            f"{where}: {key}: must be a table with {', '.join(_MODEL_KEYS)}, "
            f"not {type(value).__name__}"
        )
    unknown = sorted(set(value) - set(_MODEL_KEYS))
    if unknown:
        raise ModelTableError(
            f"{where}: {key}.{unknown[0]}: unknown key; a model has {', '.join(_MODEL_KEYS)}"
        )
    price_in = _price(where, f"{key}.input_per_million", value.get("input_per_million"))
    price_out = _price(where, f"{key}.output_per_million", value.get("output_per_million"))
    if (price_in is None) != (price_out is None):
        missing = "output_per_million" if price_out is None else "input_per_million"
        raise ModelTableError(
            f"{where}: {key}: has one price but no {missing}: give both prices or neither"
        )
    window = value.get("context_window")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window <= 0
    ):
        raise ModelTableError(
            f"{where}: {key}.context_window: {window!r} is not a whole number of tokens "
            "above 0 (e.g. 200_000)"
        )
    return ModelInfo(price_in, price_out, window)


def _price(where: str, key: str, value: object) -> Decimal | None:
    """A price as Decimal: a string ("2.50") or a number (a float through its shortest text,
    so 0.4 is 0.4, not its binary neighbour)."""
    if value is None:
        return None
    price: Decimal | None = None
    if isinstance(value, str):
        try:
            price = Decimal(value.strip())
        except InvalidOperation:
            price = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        price = Decimal(str(value))
    if price is None or not price.is_finite():
        raise ModelTableError(
            f'{where}: {key}: {value!r} is not a price: write USD per million tokens, e.g. "2.50"'
        )
    if price < 0:
        raise ModelTableError(f"{where}: {key}: {value!r} is negative: a price is 0 or more")
    return price


@dataclass(frozen=True)
class Budget:
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_cost_usd: Decimal | None = None
    deadline: timedelta | None = None
    # "stop": end with a partial result; "ask": an approval to extend (each limit doubles).
    on_exhausted: Literal["stop", "ask"] = "stop"
    approvers: tuple[str, ...] = ("operators",)
    prices: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    """The spec's own prices, (input, output) USD per million tokens; they come before the
    model table."""

    def overridden(self, o: BudgetOverride | None) -> Budget:
        if o is None:
            return self
        hours = o.deadline_hours
        return Budget(
            max_input_tokens=o.max_input_tokens or self.max_input_tokens,
            max_output_tokens=o.max_output_tokens or self.max_output_tokens,
            max_cost_usd=o.max_cost_usd or self.max_cost_usd,
            deadline=timedelta(hours=hours) if hours else self.deadline,
            on_exhausted=o.on_exhausted or self.on_exhausted,
            approvers=self.approvers,
            prices=self.prices,
        )

    def price(self, model: str, table: ModelTable | None = None) -> tuple[Decimal, Decimal] | None:
        """The model's (input, output) price: the spec's own first, then the table (by default
        SHIPPED_MODELS); None if neither knows it."""
        own = self.prices.get(model)
        if own is not None:
            return Decimal(own[0]), Decimal(own[1])
        return (SHIPPED_MODELS if table is None else table).price(model)

    def cost(
        self, model: str, input_tokens: int, output_tokens: int, table: ModelTable | None = None
    ) -> Decimal:
        """What the tokens cost in USD. A model without a price raises UnknownPrice when the
        budget has a cost limit (never counted as free); without a cost limit it costs 0."""
        price = self.price(model, table)
        if price is None:
            if self.max_cost_usd is not None:
                raise UnknownPrice([model])
            return Decimal(0)
        price_in, price_out = price
        return (price_in * input_tokens + price_out * output_tokens) / MILLION

    def check_priced(self, models: Iterable[str], table: ModelTable | None = None) -> None:
        """UnknownPrice naming every model without a price, if the budget has a cost limit;
        for start-up checks (a spec's route, a run's route override)."""
        if self.max_cost_usd is None:
            return
        unpriced = [m for m in models if self.price(m, table) is None]
        if unpriced:
            raise UnknownPrice(unpriced)


# The table shipped with durable-agents (current OpenAI and Anthropic models).
SHIPPED_MODELS_PATH = Path(__file__).parent / "models.toml"
# What a budget prices against when it is given no table (the catalog's table is the shipped one
# extended by the plugins').
SHIPPED_MODELS = ModelTable.load(SHIPPED_MODELS_PATH)

"""Budgets: what a run may spend (tokens, money, time) and what happens at the limit.

Costs come from a price table per model (USD per million tokens), which a spec may extend;
usage is what the providers report. Money is Decimal, never float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Literal

from workflows.models import BudgetOverride

# (input, output) USD per million tokens. The sim's models cost something too, so that
# budgets can be exercised offline.
PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "gpt-4.1": (Decimal("2.00"), Decimal("8.00")),
    "gpt-4.1-mini": (Decimal("0.40"), Decimal("1.60")),
    "claude-sonnet-4-5": (Decimal("3.00"), Decimal("15.00")),
    "claude-haiku-4-5": (Decimal("1.00"), Decimal("5.00")),
    "onboarding": (Decimal("1.00"), Decimal("4.00")),
    "onboarding-backup": (Decimal("1.00"), Decimal("4.00")),
    "refund": (Decimal("1.00"), Decimal("4.00")),
}
MILLION = Decimal(1_000_000)

# Context windows in tokens; compaction starts at `AgentSpec.compact_at` of the window. The
# sim's are small so that long runs compact offline too.
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4.1": 1_000_000,
    "gpt-4.1-mini": 1_000_000,
    "claude-sonnet-4-5": 200_000,
    "claude-haiku-4-5": 200_000,
    "onboarding": 32_000,
    "onboarding-backup": 32_000,
    "refund": 32_000,
    "bench": 1_000_000,
}


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

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> Decimal:
        price_in, price_out = self.prices.get(model) or PRICES.get(model) or (0, 0)
        return (Decimal(price_in) * input_tokens + Decimal(price_out) * output_tokens) / MILLION

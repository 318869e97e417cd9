"""Configuration, not code: the directory of people and groups, and the model table (prices and
context windows), loaded from TOML and checked at load; a cost limit fails closed."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from durable_agents import _directory
from durable_agents._budgets import SHIPPED_MODELS_PATH, Budget, ModelInfo, ModelTable
from durable_agents._directory import Directory
from durable_agents._discovery import discover
from durable_agents.errors import DirectoryError, ModelTableError, UnknownPerson, UnknownPrice
from sim.agents import AGENTS
from sim.scripts import SCRIPTS

ROOT = Path(__file__).parent.parent
SIM_MODELS_PATH = ROOT / "sim" / "agents" / "models.toml"
SIM_DIRECTORY_PATH = ROOT / "sim" / "agents" / "directory.toml"
# What workers and the CLI use: the shipped table and the sim world's, merged by the catalog.
CATALOG = discover(env="")


def write(tmp_path: Path, text: str, name: str = "conf.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def one_line(exc: pytest.ExceptionInfo[BaseException], path: Path) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# ---- the directory ------------------------------------------------------------------------


def test_the_sim_directory_loads_with_the_people_and_groups_of_before() -> None:
    sim = Directory.load(ROOT / "sim" / "agents" / "directory.toml")
    assert dict(sim.groups) == {
        "operators": {"olga", "omar"},
        "hr-managers": {"hana", "hugo"},
        "support-leads": {"sam", "lee"},
        "support-managers": {"maria"},
    }
    principals = {"alice", "desk", "agent-desk", "ops-anna", "hr-demo", "mallory", "tester"}
    principals |= {"bench", "system"}
    assert sim.people == principals | {"olga", "omar", "hana", "hugo", "sam", "lee", "maria"}
    assert sim == AGENTS.directory  # what the sim world's plugin brings


def test_the_catalogs_directory_answers_in_normal_form() -> None:
    directory = CATALOG.directory
    assert directory.person("Hana ") == "hana"
    assert directory.person("ＳＡＭ") == "sam"  # full-width letters: NFKC
    assert directory.members("operators") == {"olga", "omar"}
    assert directory.members("nobody") == frozenset()
    assert directory.groups["support-managers"] == {"maria"}
    assert "mallory" in directory.people and "maria" in directory.people
    assert _directory.normalize("  Ｏｌｇａ\t") == "olga"
    with pytest.raises(TypeError):
        directory.groups["x"] = frozenset({"eve"})  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("   ", "the name is empty"),
        ("", "the name is empty"),
        ("9lives", "is not a name"),
        ("a b", "is not a name"),
        ("x" * 65, "is not a name"),
        ("eve", "'eve' is not in the directory; known: agent-desk, alice,"),
    ],
)
def test_person_refuses_with_the_messages_of_before(name: str, says: str) -> None:
    with pytest.raises(UnknownPerson, match=re.escape(says)):
        CATALOG.directory.person(name)


def test_person_refuses_what_is_not_a_string() -> None:
    with pytest.raises(UnknownPerson, match="must be a string, not int"):
        CATALOG.directory.person(7)  # type: ignore[arg-type]


def test_a_directory_file_normalises_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'people = [" Alice", "DESK"]\n[groups]\nfinance = ["Fiona", "ｆｒｅｄ "]\n',
    )
    d = Directory.load(path)
    assert d.people == {"alice", "desk", "fiona", "fred"}
    assert d.members("finance") == {"fiona", "fred"}
    assert d.knows_group("finance") and not d.knows_group("operators")
    assert d.person("FIONA") == "fiona"
    # Groups only, no people: the members are the people.
    assert Directory.load(write(tmp_path, '[groups]\nops = ["o"]\n')).people == {"o"}
    # Someone in two groups is fine.
    two = Directory.load(write(tmp_path, '[groups]\na = ["x"]\nb = ["x", "y"]\n'))
    assert two.members("a") == {"x"} and two.members("b") == {"x", "y"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('peeple = ["alice"]\n', "unknown key 'peeple': a directory has only 'people'"),
        ('people = "alice"\n', "people: must be a list of names"),
        ("people = [1]\n", "people: 1 is not a name: write names as strings in quotes"),
        ('people = ["al ice"]\n', "people: 'al ice' is not a name (a letter, then"),
        ('people = ["-x"]\n', "people: '-x' is not a name"),
        ('people = ["alice", "Alice "]\n', "people: 'alice' is listed twice: list it once"),
        ('groups = ["ops"]\n', "groups: must be a table ([groups] with group = [names])"),
        ('[groups]\nops = "olga"\n', "groups.ops: must be a list of names"),
        ('[groups]\nOps = ["olga"]\n', "groups.Ops: 'Ops' is not a group name (a lowercase"),
        ('[groups]\n"ops.team" = ["olga"]\n', "groups.ops.team: 'ops.team' is not a group name"),
        ('[groups]\nops = ["olga", "OLGA"]\n', "groups.ops: 'olga' is listed twice"),
        ('[groups]\nops = ["olga", ""]\n', "groups.ops: '' is not a name"),
        ("[groups]\nops = []\n", "groups.ops: has no members: list at least one or remove it"),
        ("people = [", "not valid TOML"),
    ],
)
def test_a_bad_directory_file_is_refused_in_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DirectoryError) as exc:
        Directory.load(path)
    assert says in one_line(exc, path)


def test_a_missing_directory_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(DirectoryError) as exc:
        Directory.load(path)
    assert "cannot read the directory" in one_line(exc, path)


def test_directories_merge_and_a_group_may_not_change_its_members() -> None:
    base = Directory(people=frozenset({"alice"}), groups={"ops": frozenset({"olga"})})
    more = Directory(people=frozenset({"bob"}), groups={"finance": frozenset({"fiona"})})
    both = base.merged(more)
    assert both.people == {"alice", "bob", "olga", "fiona"}
    assert both.members("ops") == {"olga"} and both.members("finance") == {"fiona"}
    assert base.merged(Directory(groups={"ops": frozenset({"olga"})})) == base  # same: fine
    with pytest.raises(DirectoryError, match=r"group 'ops' is defined twice with different"):
        base.merged(Directory(groups={"ops": frozenset({"olga", "omar"})}))
    # The values themselves do not change.
    assert base.people == {"alice", "olga"} and "finance" not in base.groups


def test_a_directory_built_in_code_is_checked_too() -> None:
    with pytest.raises(DirectoryError, match="not a name in normal form"):
        Directory(people=frozenset({"Alice"}))
    with pytest.raises(DirectoryError, match="is not a group name"):
        Directory(groups={"Ops": frozenset({"olga"})})
    with pytest.raises(DirectoryError, match="has no members"):
        Directory(groups={"ops": frozenset()})
    d = Directory(groups={"ops": frozenset({"olga"})})
    assert hash(d) == hash(Directory(people=frozenset({"olga"}), groups={"ops": {"olga"}}))


# ---- the model table ----------------------------------------------------------------------


def test_the_shipped_table_prices_current_openai_and_anthropic_models() -> None:
    shipped = ModelTable.load(SHIPPED_MODELS_PATH)
    for model in (
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-4o",
        "gpt-4o-mini",
        "o3",
        "o4-mini",
        "claude-sonnet-4-5",
        "claude-opus-4-1",
        "claude-haiku-4-5",
    ):
        price = shipped.price(model)
        assert price is not None and all(p > 0 for p in price), model
        assert (shipped.context_window(model) or 0) >= 128_000, model
    assert shipped.price("gpt-4.1") == (Decimal("2.00"), Decimal("8.00"))
    assert shipped.price("claude-sonnet-4-5") == (Decimal("3.00"), Decimal("15.00"))
    assert shipped.price("onboarding") is None  # the sim's models are not shipped


def test_every_sim_model_has_a_price() -> None:
    sim = ModelTable.load(SIM_MODELS_PATH)
    assert set(sim.models) == set(SCRIPTS)
    for model in SCRIPTS:
        assert sim.price(model) is not None, model
    routes = "".join(p.read_text() for p in (ROOT / "sim" / "agents").glob("*.py"))
    for model in re.findall(r"sim-(?:openai|anthropic):([\w.-]+)", routes):
        assert CATALOG.models.price(model) is not None, model


def test_the_catalogs_table_is_the_shipped_one_extended_by_the_sims() -> None:
    models = CATALOG.models
    assert models.context_window("onboarding") == 32000
    assert models.context_window("refund") == 32000
    assert models.context_window("bench") == 1_000_000
    assert models.context_window("reader") is None  # long reading runs do not compact
    assert models.context_window("no-such-model") is None
    assert models.price("onboarding") == (Decimal("1.00"), Decimal("4.00"))
    assert models.price("gpt-4.1-mini") == (Decimal("0.40"), Decimal("1.60"))


def test_a_model_table_file_reads_strings_and_numbers_as_decimal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[models."m-1"]\ninput_per_million = "2.50"\noutput_per_million = 0.4\n'
        "context_window = 8_192\n"
        '[models."free"]\ninput_per_million = 0\noutput_per_million = 0\n'
        '[models."window-only"]\ncontext_window = 4096\n',
    )
    table = ModelTable.load(path)
    assert table.price("m-1") == (Decimal("2.50"), Decimal("0.4"))
    assert table.context_window("m-1") == 8192
    assert table.price("free") == (Decimal(0), Decimal(0))
    assert table.price("window-only") is None and table.context_window("window-only") == 4096
    assert table.price("unknown") is None and table.context_window("unknown") is None
    assert ModelTable.load(write(tmp_path, "")).models == {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[model."m"]\ncontext_window = 1\n', "unknown key 'model': a model table has only"),
        ('models = ["m"]\n', "models: must be tables"),
        ("[models]\nm = 3\n", "models.'m': must be a table with input_per_million"),
        (
            '[models."m"]\ninput_per_milion = "1"\n',
            "models.'m'.input_per_milion: unknown key; a model has input_per_million",
        ),
        (
            '[models."m"]\ninput_per_million = "-1"\noutput_per_million = "1"\n',
            "models.'m'.input_per_million: '-1' is negative: a price is 0 or more",
        ),
        (
            '[models."m"]\ninput_per_million = 1\noutput_per_million = -0.5\n',
            "models.'m'.output_per_million: -0.5 is negative",
        ),
        (
            '[models."m"]\ninput_per_million = "two"\noutput_per_million = "1"\n',
            "models.'m'.input_per_million: 'two' is not a price: write USD per million",
        ),
        (
            '[models."m"]\ninput_per_million = "NaN"\noutput_per_million = "1"\n',
            "models.'m'.input_per_million: 'NaN' is not a price",
        ),
        (
            '[models."m"]\ninput_per_million = true\noutput_per_million = "1"\n',
            "models.'m'.input_per_million: True is not a price",
        ),
        (
            '[models."m"]\ninput_per_million = "1"\n',
            "models.'m': has one price but no output_per_million: give both prices or neither",
        ),
        (
            '[models."m"]\ncontext_window = 1.5e5\n',
            "models.'m'.context_window: 150000.0 is not a whole number of tokens",
        ),
        ('[models."m"]\ncontext_window = "8k"\n', "models.'m'.context_window: '8k' is not a"),
        ('[models."m"]\ncontext_window = 0\n', "models.'m'.context_window: 0 is not a whole"),
        ('[models." m"]\ncontext_window = 1\n', "a model name must be non-empty, without spaces"),
        ("[models.\n", "not valid TOML"),
    ],
)
def test_a_bad_model_table_is_refused_in_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ModelTableError) as exc:
        ModelTable.load(path)
    assert says in one_line(exc, path)


def test_a_missing_model_table_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ModelTableError) as exc:
        ModelTable.load(path)
    assert "cannot read the model table" in one_line(exc, path)


def test_merged_tables_later_wins_part_by_part(tmp_path: Path) -> None:
    ours = write(
        tmp_path,
        '[models."gpt-4.1"]\ninput_per_million = "1.50"\noutput_per_million = "6.00"\n'
        '[models."claude-sonnet-4-5"]\ncontext_window = 1_000_000\n'
        '[models."llama3.1:8b"]\ninput_per_million = 0\noutput_per_million = 0\n'
        "context_window = 131_072\n",
        "ours.toml",
    )
    shipped = ModelTable.load(SHIPPED_MODELS_PATH)
    table = shipped.merged(ModelTable.load(ours))
    assert table.price("gpt-4.1") == (Decimal("1.50"), Decimal("6.00"))
    assert table.context_window("gpt-4.1") == shipped.context_window("gpt-4.1")  # kept
    assert table.price("claude-sonnet-4-5") == shipped.price("claude-sonnet-4-5")  # kept
    assert table.context_window("claude-sonnet-4-5") == 1_000_000
    assert table.price("llama3.1:8b") == (Decimal(0), Decimal(0))
    assert table.price("gpt-4o") == shipped.price("gpt-4o")
    # The inputs are values: merging changed neither.
    assert shipped.price("gpt-4.1") == (Decimal("2.00"), Decimal("8.00"))
    assert ModelInfo(context_window=5).over(ModelInfo(Decimal(1), Decimal(2), 3)) == ModelInfo(
        Decimal(1), Decimal(2), 5
    )


def test_the_shipped_files_parse_with_plain_tomllib() -> None:
    for path in (SHIPPED_MODELS_PATH, SIM_MODELS_PATH, SIM_DIRECTORY_PATH):
        with path.open("rb") as fh:
            assert tomllib.load(fh)


# ---- fail closed ----------------------------------------------------------------------------

TABLE = ModelTable({"m": ModelInfo(Decimal("2"), Decimal("8"), 1000)})


def test_cost_comes_from_the_spec_first_then_the_table() -> None:
    budget = Budget(prices={"own": (Decimal("1"), Decimal("1"))})
    assert budget.cost("m", 1_000_000, 500_000, TABLE) == Decimal("6")
    assert budget.cost("own", 1_000_000, 1_000_000, TABLE) == Decimal("2")
    spec_wins = Budget(prices={"m": (Decimal("0"), Decimal("0"))})
    assert spec_wins.cost("m", 1_000_000, 1_000_000, TABLE) == Decimal(0)
    # Without a table: the shipped one (the sim's models come with the sim's plugin).
    assert Budget().cost("onboarding", 1000, 1000) == Decimal(0)
    assert Budget().cost("onboarding", 1000, 1000, CATALOG.models) == Decimal("0.005")
    assert Budget().cost("gpt-4.1", 1_000_000, 0) == Decimal("2.00")


def test_an_unknown_model_under_a_cost_limit_fails_closed() -> None:
    limited = Budget(max_cost_usd=Decimal("1"))
    with pytest.raises(UnknownPrice) as exc:
        limited.cost("mystery", 10, 10, TABLE)
    assert str(exc.value) == (
        "no price for model 'mystery': add it to a model table (models.toml) "
        "or remove the cost limit"
    )
    assert exc.value.models == ("mystery",)
    assert isinstance(exc.value, ValueError)
    with pytest.raises(UnknownPrice):
        limited.cost("mystery", 0, 0)  # the default table does not know it either
    # A model the spec prices is fine under a limit.
    own = Budget(max_cost_usd=Decimal("1"), prices={"mystery": (Decimal(1), Decimal(1))})
    assert own.cost("mystery", 1_000_000, 0, TABLE) == Decimal(1)


def test_an_unknown_model_without_a_cost_limit_costs_nothing() -> None:
    assert Budget().cost("mystery", 10_000, 10_000, TABLE) == Decimal(0)
    assert Budget().price("mystery", TABLE) is None  # and the caller can tell
    tokens_only = Budget(max_input_tokens=100)
    assert tokens_only.cost("mystery", 10, 10, TABLE) == Decimal(0)


def test_a_cost_limit_survives_an_override_and_still_fails_closed() -> None:
    from durable_agents._vocab.schemas import BudgetOverride

    budget = Budget().overridden(BudgetOverride(max_cost_usd=Decimal("0.5")))
    with pytest.raises(UnknownPrice):
        budget.cost("mystery", 1, 1, TABLE)


def test_check_priced_names_every_unpriced_model() -> None:
    limited = Budget(max_cost_usd=Decimal("1"), prices={"own": (Decimal(1), Decimal(1))})
    limited.check_priced(["m", "own"], TABLE)  # all priced: no error
    limited.check_priced([], TABLE)
    with pytest.raises(UnknownPrice) as exc:
        limited.check_priced(["zeta", "m", "alpha", "zeta"], TABLE)
    assert exc.value.models == ("alpha", "zeta")
    assert str(exc.value) == (
        "no price for models 'alpha', 'zeta': add them to a model table (models.toml) "
        "or remove the cost limit"
    )
    Budget().check_priced(["zeta", "alpha"], TABLE)  # no cost limit: nothing to check
    limited.check_priced(["onboarding", "onboarding-backup", "gpt-4.1"], CATALOG.models)

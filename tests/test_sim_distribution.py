"""The sim world is a plugin outside the product: its own distribution (sim/pyproject.toml) whose
entry points give workers its agents and agentctl its `sim` and `demo` commands. The product's
wheel holds no sim (nor bench) and names no sim route; a plugin whose commands fail to load is
one line on stderr and every other command still works."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import typer
from typer.main import get_command

from durable_agents.errors import SettingsError
from durable_agents.starters import cli

ROOT = Path(__file__).resolve().parent.parent
AGENTCTL = str(Path(sys.executable).parent / "agentctl")
SOURCES = ("durable_agents", "workflows", "activities", "workers", "starters", "sim", "bench")
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
SIM_ROUTE = re.compile(r"\bsim-(openai|anthropic)\b")
IMPORTS_SIM = re.compile(r"^\s*(from|import)\s+sim\b", re.MULTILINE)


def project(path: Path) -> dict[str, object]:
    return dict(tomllib.loads(path.read_text())["project"])


def wheel(source: Path, out: Path) -> zipfile.ZipFile:
    """`pip wheel --no-deps SOURCE`, as a release builds it."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(source), "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [built] = out.glob("*.whl")
    return zipfile.ZipFile(built)


def command_names(app: typer.Typer) -> set[str]:
    return set(get_command(app).commands)  # type: ignore[attr-defined]


# --- the product's wheel --------------------------------------------------------------------


def test_the_products_wheel_holds_no_sim_no_bench_and_names_no_sim_route(tmp_path: Path) -> None:
    # A copy of the checkout (the symlinked folders with it), so the build leaves no trace here.
    source = tmp_path / "src"
    for name in SOURCES:
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=JUNK)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = wheel(source, tmp_path / "wheels")
    names = built.namelist()
    assert {n.split("/")[0] for n in names} == {"durable_agents", "durable_agents-0.3.0.dist-info"}
    assert not [n for n in names if n.startswith(("sim/", "bench/"))]
    assert "durable_agents/workflows/agent.py" in names  # the design's folders, under one name
    [points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "sim" not in built.read(points).decode()
    for name in names:
        if name.endswith(".py"):
            text = built.read(name).decode()
            assert not SIM_ROUTE.search(text), f"{name} names a sim route"
            assert not IMPORTS_SIM.search(text), f"{name} imports the sim"


# --- the sim's own distribution ---------------------------------------------------------------


def test_the_sims_wheel_has_its_modules_data_and_entry_points(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "sim", tmp_path / "sim", ignore=JUNK)
    built = wheel(tmp_path / "sim", tmp_path / "wheels")
    names = set(built.namelist())
    assert {n.split("/")[0] for n in names} == {"sim", "durable_agents_sim-0.3.0.dist-info"}
    expected = {f"sim/{p.name}" for p in (ROOT / "sim").glob("*.py")}
    expected |= {f"sim/agents/{p.name}" for p in (ROOT / "sim" / "agents").glob("*.py")}
    expected |= {"sim/agents/directory.toml", "sim/agents/models.toml"}
    assert expected <= names, expected - names
    [points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = built.read(points).decode()
    assert "[durable_agents.agents]\nsim = sim.agents:AGENTS" in text
    assert "[durable_agents.commands]\nsim = sim.cli:attach" in text


def test_the_sim_is_released_with_the_product_at_its_version() -> None:
    product, sim = project(ROOT / "pyproject.toml"), project(ROOT / "sim" / "pyproject.toml")
    assert sim["name"] == "durable-agents-sim" and sim["version"] == product["version"]
    assert f"durable-agents=={product['version']}" in sim["dependencies"]  # type: ignore[operator]


def test_the_installed_sim_imports_from_anywhere(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", "import sim, sim.agents; print(sim.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == ROOT / "sim" / "__init__.py"


# --- agentctl's commands from plugins -------------------------------------------------------


def test_sim_and_demo_are_commands_only_because_the_sim_distribution_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def by_sim(group: str) -> list[importlib.metadata.EntryPoint]:
        points = importlib.metadata.entry_points(group=group)
        return [p for p in points if p.dist and p.dist.name == "durable-agents-sim"]

    [commands] = by_sim("durable_agents.commands")
    assert (commands.name, commands.value) == ("sim", "sim.cli:attach")
    [agents] = by_sim("durable_agents.agents")
    assert (agents.name, agents.value) == ("sim", "sim.agents:AGENTS")
    product = importlib.metadata.distribution("durable-agents")
    assert "sim" not in (product.read_text("entry_points.txt") or "")

    assert {"sim", "demo", "run", "worker", "server"} <= command_names(cli.attach(cli.new_app()))
    # The same agentctl, with the sim's distribution out of sight: no sim, no demo.
    everything = importlib.metadata.entry_points

    def without_sim(group: str) -> importlib.metadata.EntryPoints:
        return importlib.metadata.EntryPoints(
            p
            for p in everything(group=group)
            if not (p.dist and p.dist.name == "durable-agents-sim")
        )

    monkeypatch.setattr(importlib.metadata, "entry_points", without_sim)
    names = command_names(cli.attach(cli.new_app()))
    assert "run" in names and "worker" in names
    assert not {"sim", "demo"} & names


PLUGINS = {
    # Fails on import, with a message over two lines.
    "broken_cmds": 'raise RuntimeError("no such world\\nsecond line")\n',
    # Adds a command, then fails: none of it stays.
    "partial_cmds": """
def attach(app):
    app.command("half-done")(lambda: None)
    raise ValueError("could not finish")
""",
    # Names a command agentctl already has: none of it is added.
    "clashing_cmds": """
def run():
    '''Not agentctl's run.'''

def extra():
    '''An extra command.'''

def attach(app):
    app.command("extra")(extra)
    app.command()(run)
""",
}


def test_a_plugin_whose_commands_fail_is_one_line_and_every_other_command_works(
    tmp_path: Path,
) -> None:
    for module, code in PLUGINS.items():
        (tmp_path / f"{module}.py").write_text(code)
    info = tmp_path / "durable_agents_probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: durable-agents-probe\n"
                                   "Version: 1.0\n")  # fmt: skip
    (info / "entry_points.txt").write_text(
        "[durable_agents.commands]\n"
        + "".join(f"{m.split('_')[0]} = {m}:attach\n" for m in PLUGINS)
    )
    env = os.environ | {"PYTHONPATH": str(tmp_path)}

    def agentctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AGENTCTL, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    shown = agentctl("--help")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stderr.splitlines()
    assert len(lines) == 3, shown.stderr
    broken, clashing, partial = sorted(lines, key=lambda line: line.split("'")[1])
    assert broken == (
        "warning: plugin 'broken' (durable-agents-probe 1.0, broken_cmds:attach) adds no "
        "commands: RuntimeError: no such world second line"
    )
    assert "plugin 'partial'" in partial and "ValueError: could not finish" in partial
    assert "plugin 'clashing'" in clashing and "commands agentctl already has: run" in clashing
    assert " half-done " not in shown.stdout and " extra " not in shown.stdout
    for command in ("run", "worker", "sim", "demo"):
        assert f" {command} " in shown.stdout
    # Every other command still works, the other plugins' included.
    for args in (("run", "--help"), ("sim", "--help"), ("approvals", "--help")):
        done = agentctl(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert "Usage: agentctl" in done.stdout
    assert agentctl("half-done").returncode == 2  # no such command


# --- what the sim may use of the product ------------------------------------------------------


def test_the_contract_forbids_the_sim_every_private_module() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [
        c for c in config["contracts"] if c["name"].startswith("The sim world imports only")
    ]
    assert contract["source_modules"] == ["sim"]
    private = {
        f"durable_agents.{p.stem}"
        for p in (ROOT / "durable_agents").iterdir()
        if p.name.startswith("_") and not p.name.startswith("__")
    }
    folders = {f"durable_agents.{n}" for n in ("workflows", "activities", "workers", "starters")}
    assert set(contract["forbidden_modules"]) == private | folders


def test_the_sim_reads_its_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from sim import settings

    for name in ("DURABLE_AGENTS_SIM_URL", "DURABLE_AGENTS_COMPANY_URL"):
        monkeypatch.delenv(name, raising=False)
    assert settings.current().company_base_url == "http://127.0.0.1:8787"
    monkeypatch.setenv("DURABLE_AGENTS_SIM_URL", "http://127.0.0.1:9999/")
    assert settings.current().company_base_url == "http://127.0.0.1:9999"
    monkeypatch.setenv("DURABLE_AGENTS_COMPANY_URL", "http://systems.example:8080")
    assert settings.current().company_base_url == "http://systems.example:8080"
    monkeypatch.setenv("DURABLE_AGENTS_SIM_URL", "sim.example")
    with pytest.raises(SettingsError, match="DURABLE_AGENTS_SIM_URL='sim.example'"):
        settings.current()

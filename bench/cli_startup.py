"""How much CPU `agentctl` costs an operator per command: `--help` and `status RUN`.

    python -m bench.cli_startup [--repeats 5]

Starts a Temporal dev server (headless, a temporary database), the sim world and a worker
process, starts one onboarding run and waits until it waits for its clearance event; then runs
`agentctl --help` and `agentctl status RUN` (the real query, answered by the worker) `--repeats`
times each and measures each child's CPU time, user + system, from `os.wait4` (the Temporal
client's Rust threads included). `python -c pass` is measured the same way, as the floor every
Python command pays. The goal is 0.5 CPU-seconds per command; this prints figures, never
pass/fail.

Progress goes to stderr; a table and, as the last line, one JSON object go to stdout:
`{"help": {"min": …, "median": …, "max": …}, "status": {…}, "python": {…}, "goal": 0.5, …}`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from durable_agents.starters.devserver import DevServer, free_port
from sim.world import world

AGENTCTL = str(Path(sys.executable).parent / "agentctl")
GOAL = 0.5  # CPU-seconds per command


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpu_seconds(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """User + system CPU seconds of one run of `cmd` (and of any children it waited for)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and proc.stderr is not None:
        say(f"{' '.join(cmd[1:])} exited {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
    if proc.stderr is not None:
        proc.stderr.close()
    return usage.ru_utime + usage.ru_stime, proc.returncode


def figures(samples: list[float]) -> dict[str, float]:
    return {
        "min": round(min(samples), 3),
        "median": round(statistics.median(samples), 3),
        "max": round(max(samples), 3),
    }


def wait_until_waiting(run: str, env: dict[str, str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        out = subprocess.run(
            [AGENTCTL, "status", run, "--json"], env=env, capture_output=True, text=True
        )
        if out.returncode == 0:
            seen = json.loads(out.stdout)["status"]
            if seen == "waiting_event":
                return
        time.sleep(0.5)
    raise RuntimeError(f"run {run} did not come to wait for its event (last seen: {seen!r})")


def measure(repeats: int, measured: list[str]) -> dict[str, object]:
    from sim.runner import SimServer

    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        state = Path(tmp)
        dev = DevServer(db_file=state / "temporal.db", port=free_port(), headless=True)
        say(f"starting the Temporal dev server on {dev.address} …")
        with dev, SimServer(state / "sim.db") as sim:
            queue = f"bench-cli-{uuid.uuid4().hex[:6]}"
            env = os.environ | {
                "TEMPORAL_ADDRESS": dev.address,
                "DURABLE_AGENTS_TASK_QUEUE": queue,
                **world(sim.url, sim.credentials),
                "DURABLE_AGENTS_STORE_URL": f"sqlite:///{state / 'store.sqlite3'}",
                "DURABLE_AGENTS_AUDIT_PATH": str(state / "audit.sqlite3"),
                "DURABLE_AGENTS_METRICS_ADDRESS": "off",
                "DURABLE_AGENTS_TRACING": "off",
            }
            worker = subprocess.Popen(
                [AGENTCTL, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                run = f"bench-cli-{uuid.uuid4().hex[:8]}"
                hire = {
                    "employee_id": "E1",
                    "full_name": "Ada Lovelace",
                    "personal_email": "ada@lovelace.example",
                    "start_date": "2026-12-01",
                    "ship_to": "London",
                }
                subprocess.run(
                    [AGENTCTL, "run", "onboarding", "--as", "bench", "--id", run]
                    + ["--input", json.dumps(hire)],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                wait_until_waiting(run, env)
                say(f"run {run} waits for its event; measuring {repeats} times each …")
                samples: dict[str, list[float]] = {"python": [], "help": [], "status": []}
                failures = 0
                for _ in range(repeats):
                    for name, cmd in (
                        ("python", [sys.executable, "-c", "pass"]),
                        ("help", [*measured, "--help"]),
                        ("status", [*measured, "status", run]),
                    ):
                        seconds, code = cpu_seconds(cmd, env)
                        samples[name].append(seconds)
                        failures += code != 0
            finally:
                worker.terminate()
                worker.wait(30)
    out: dict[str, object] = {name: figures(values) for name, values in samples.items()}
    out |= {"goal": GOAL, "repeats": repeats, "failures": failures, "unit": "cpu_seconds"}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_startup", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--agentctl",
        default=AGENTCTL,
        help="The command measured (e.g. another checkout's: 'python -m workers' is the worker, "
        "so give a script); the stack is always run by this checkout's agentctl.",
    )
    args = parser.parse_args(argv)
    out = measure(max(1, args.repeats), shlex.split(args.agentctl))
    print(f"{'command':<24} {'min':>6} {'median':>7} {'max':>6}  (CPU seconds, user + system)")
    for name, label in (
        ("python", "python -c pass"),
        ("help", "agentctl --help"),
        ("status", "agentctl status RUN"),
    ):
        f = out[name]
        assert isinstance(f, dict)
        print(f"{label:<24} {f['min']:>6.3f} {f['median']:>7.3f} {f['max']:>6.3f}")
    print(f"goal: {GOAL} CPU-seconds per command (median)")
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

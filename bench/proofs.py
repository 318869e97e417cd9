"""What a person's proof costs, against what a side effect's token costs, in one run.

    python -m bench.proofs [--n 200] [--rounds 3]

Starts the sim and signs hana in (the device flow, over HTTP). Each round asks the sim's
provider for `--n` proofs, one per decision (token exchange with her access token and the
decision's `authorization_details`, as `agentctl approve` does), and has a worker's
`ProofVerifier` check each (signature, issuer, audience, expiry; keys cached after the first);
then, as the baseline, `--n` agent tokens for side effects (`bench.tokens`' exchange). Figures,
never pass/fail; the last line is one JSON object with the medians over rounds and each
round's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.tokens import granted_sim, percentile
from bench.tokens import measure as tokens
from sim.person import approve_device, password

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


def sign_in(base: str, state_dir: Path, person: str) -> str:
    with httpx.Client(base_url=base, timeout=10) as http:
        start = http.post("/idp/device_authorization", data={"client_id": "agentctl"}).json()
        approve_device(base, start["user_code"], person, password(state_dir, person))
        form = {"grant_type": DEVICE_CODE, "device_code": start["device_code"]}
        got = http.post("/idp/token", data=form | {"client_id": "agentctl"}).json()
    return str(got["access_token"])


async def round_(base: str, access: str, n: int) -> dict[str, float]:
    from durable_agents._vocab import proofs
    from durable_agents.activities.proofs import ProofTrust, ProofVerifier

    verifier = ProofVerifier(ProofTrust(discovery_url=f"{base}/idp"))
    issued: list[float] = []
    checked: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for i in range(n):
            details = proofs.decision(f"bench-{i}", "apr-1", True, "0123456789abcdef", "ok")
            form = {
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "client_id": "agentctl",
                "subject_token": access,
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": "durable-agents",
                "authorization_details": json.dumps([details]),
            }
            start = time.perf_counter()
            proof = (await http.post("/idp/token", data=form)).json()["access_token"]
            issued.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await verifier.verify(proof)
            checked.append((time.perf_counter() - start) * 1000)
    side_effect = await tokens(n)
    return {
        "proof_issue_p50_ms": round(statistics.median(issued), 2),
        "proof_issue_p99_ms": round(percentile(issued, 0.99), 2),
        "verify_first_ms": round(checked[0], 2),  # discovery and JWKS fetched
        "verify_p50_ms": round(statistics.median(checked[1:] or checked), 3),
        "token_exchange_p50_ms": side_effect["exchange_p50_ms"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proofs", description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with granted_sim() as sim:
        access = sign_in(sim.url, sim.db_path.parent, "hana")
        rounds = [asyncio.run(round_(sim.url, access, args.n)) for _ in range(args.rounds)]
    medians: dict[str, Any] = {
        k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0]
    }
    medians["proof_vs_token_p50"] = round(
        medians["proof_issue_p50_ms"] / medians["token_exchange_p50_ms"], 2
    )
    print(json.dumps({"n": args.n, "rounds": rounds, **medians}))


if __name__ == "__main__":
    main()

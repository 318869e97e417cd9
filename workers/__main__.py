"""`python -m workers`: the same as `agentctl worker`."""

from durable_agents.starters.cli import main

if __name__ == "__main__":
    import sys

    sys.argv[1:1] = ["worker"]
    main()

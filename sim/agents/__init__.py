"""The sim world's agents and their tools: onboarding, refund, research, reader, bench.

They are written the way any user's agents are, against `durable_agents`.
"""

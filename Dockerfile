# syntax=docker/dockerfile:1
# The durable-agents image: one image, several roles (`agentctl worker`, `agentctl sim`, ...).
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project into a self-contained virtualenv -------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from the two pyproject.toml files alone (durable-agents, and the sim world
# that `agentctl sim` serves: its own distribution), so a code change does not reinstall them.
COPY pyproject.toml ./
COPY sim/pyproject.toml sim/
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import re, tomllib; p, s = (tomllib.load(open(f, 'rb'))['project'] for f in ('pyproject.toml', 'sim/pyproject.toml')); own = lambda d: re.match(r'[A-Za-z0-9._-]+', d).group() == p['name']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['otlp'] + [d for d in s['dependencies'] if not own(d)]))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

# Then the project and the sim world (.dockerignore keeps tests, caches and secrets out of the
# context): the sim's entry points give the image `agentctl sim` and the sim's agents.
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps . ./sim

# --- runtime: the virtualenv and a non-root user, nothing else --------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DURABLE_AGENTS_STATE_DIR=/var/lib/durable-agents

# A fixed uid so volume ownership and Kubernetes runAsNonRoot checks are predictable. The state
# directory is created here, owned by that user, so a fresh named volume mounted on it inherits
# the ownership.
RUN groupadd --system --gid 10001 agentctl \
 && useradd --system --uid 10001 --gid agentctl --create-home --home-dir /home/agentctl agentctl \
 && mkdir -p /var/lib/durable-agents \
 && chown agentctl:agentctl /var/lib/durable-agents

# Code stays owned by root: the process can read it, not change it.
COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /home/agentctl

# Fail the build, not the deploy, when the entry point cannot even import, or the sim's
# commands did not load (agentctl only warns of a plugin that fails).
RUN agentctl --help > /dev/null && agentctl sim --help > /dev/null

# Exec form: agentctl is the process that receives SIGTERM, so the worker can drain.
ENTRYPOINT ["agentctl"]
CMD ["worker"]

#!/bin/sh
# Registers the custom search attributes every agent run upserts (AgentName, AgentStatus,
# Principal; all Keyword). Idempotent, so it runs on every `docker compose up`.
set -eu

ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
ATTEMPTS="${REGISTER_ATTEMPTS:-60}"

retry() {
  what="$1"
  shift
  attempt=1
  until "$@" >/dev/null 2>&1; do
    if [ "$attempt" -ge "$ATTEMPTS" ]; then
      echo "gave up waiting for $what after $ATTEMPTS attempts" >&2
      exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
  done
}

# auto-setup creates the namespace in the background after the frontend starts serving.
retry "namespace $NAMESPACE" \
  temporal operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE"

existing="$(temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE")"
for name in AgentName AgentStatus Principal; do
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name already registered"
  else
    temporal operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" \
      --name "$name" --type Keyword
    echo "search attribute $name registered"
  fi
done

# The frontend validates queries against a cached copy of the attributes: wait until it
# accepts them, so the first `agentctl run` after `up` is not refused.
retry "search attributes to be queryable" \
  temporal workflow list --address "$ADDRESS" --namespace "$NAMESPACE" --limit 1 \
  --query "AgentName = 'probe' AND AgentStatus = 'probe' AND Principal = 'probe'"
echo "search attributes ready"

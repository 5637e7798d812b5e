#!/usr/bin/env bash
# Smoke test a running Switchboard: it becomes ready, it decides, an adverse event goes to safety,
# and the model (not a fallback) answered. Used by CI on the built image and by every deploy.
#
# Usage: deploy/scripts/smoke-test.sh BASE_URL [READY_TIMEOUT_SECONDS]
# Needs curl and jq. Exit 0 when every check passes; 1 with the reason otherwise.
# SMOKE_KEY: a client key of the tenant to test as (`switchboard keys create --role client`).
set -euo pipefail

base="${1:?usage: smoke-test.sh BASE_URL [READY_TIMEOUT_SECONDS]}"
base="${base%/}"
ready_timeout="${2:-300}"

fail() {
  echo "smoke test FAILED: $*" >&2
  exit 1
}

deadline=$(($(date +%s) + ready_timeout))
# Ready (a policy is active, the audit store commits) is not enough here: readiness does not wait
# for the model, and the last check below needs the model's answer, so wait for .model.healthy.
until curl -fsS --max-time 5 "$base/readyz" 2>/dev/null | jq -e '.model.healthy == true' >/dev/null; do
  if (($(date +%s) >= deadline)); then
    curl -sS --max-time 5 "$base/readyz" >&2 || true
    fail "$base/readyz not ready with a healthy model after ${ready_timeout}s"
  fi
  sleep 3
done
curl -fsS --max-time 5 "$base/healthz" >/dev/null || fail "/healthz did not answer 200"
echo "ready: $(curl -fsS --max-time 5 "$base/readyz")"

classify() {
  curl -fsS --max-time 60 -X POST "$base/classify" \
    -H "Authorization: Bearer ${SMOKE_KEY:-}" \
    -H 'Content-Type: application/json' --data "$1"
}

# A severe-event keyword routes to safety whatever the model says: this must never regress.
adverse='{"message": "I fainted and was taken to the emergency room after my second dose.", "channel": "chat", "metadata": {"smoke_test": true}}'
answer=$(classify "$adverse") || fail "POST /classify (adverse event) did not answer 200"
echo "$answer" | jq -e '.category == "safety_compliance" and .requires_human_review == true' \
  >/dev/null || fail "adverse event not routed to safety with review: $answer"
echo "adverse event -> $(echo "$answer" | jq -c '{category, next_step, policy: .policy.revision}')"

# An ordinary request: any category, but the model must have answered (no degraded fallback).
request='{"message": "Please cancel order 4471, I ordered the wrong size.", "channel": "email", "metadata": {"smoke_test": true}}'
answer=$(classify "$request") || fail "POST /classify (service request) did not answer 200"
echo "$answer" | jq -e '.degraded == false and .llm.status == "ok"' >/dev/null \
  || fail "the model did not answer (degraded decision): $answer"
echo "service request -> $(echo "$answer" | jq -c '{category, confidence, llm_ms: .timings.llm_ms}')"

echo "smoke test passed: $base"

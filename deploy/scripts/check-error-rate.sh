#!/usr/bin/env bash
# After a deploy, watch Switchboard's own metrics in Prometheus and fail when the new version is
# unhealthy: too many failed model calls, shed requests or degraded decisions.
#
# Usage: deploy/scripts/check-error-rate.sh PROMETHEUS_URL NAMESPACE [WATCH_SECONDS] [MAX_RATIO]
#   WATCH_SECONDS  how long to watch (default 300); checked every 30 s
#   MAX_RATIO      highest acceptable share of failed model calls / degraded decisions (0.05)
# Needs curl, jq and awk. With no traffic at all the ratios are 0 and the check passes.
set -euo pipefail

prometheus="${1:?usage: check-error-rate.sh PROMETHEUS_URL NAMESPACE [WATCH_SECONDS] [MAX_RATIO]}"
namespace="${2:?namespace missing}"
watch="${3:-300}"
max_ratio="${4:-0.05}"
sel="namespace=\"$namespace\""

query() {
  curl -fsS --max-time 10 --get "${prometheus%/}/api/v1/query" --data-urlencode "query=$1" \
    | jq -r '.data.result[0].value[1] // "0"'
}

ratio_of() { # numerator selector, denominator selector
  query "sum(rate($1[2m])) / clamp_min(sum(rate($2[2m])), 1e-9)"
}

over() { awk -v v="$1" -v m="$2" 'BEGIN { exit !(v > m) }'; }

end=$(($(date +%s) + watch))
while :; do
  model_errors=$(ratio_of "switchboard_model_calls_total{$sel,status=~\"error|timeout|invalid\"}" \
    "switchboard_model_calls_total{$sel}")
  degraded=$(ratio_of "switchboard_decisions_total{$sel,outcome=\"degraded\"}" \
    "switchboard_decisions_total{$sel}")
  shed=$(query "sum(rate(switchboard_shed_total{$sel}[2m]))")
  echo "$(date -u +%H:%M:%S) model errors ${model_errors}, degraded ${degraded}, shed ${shed}/s"
  if over "$model_errors" "$max_ratio"; then
    echo "error-rate check FAILED: model error ratio $model_errors > $max_ratio" >&2
    exit 1
  fi
  if over "$degraded" "$max_ratio"; then
    echo "error-rate check FAILED: degraded decision ratio $degraded > $max_ratio" >&2
    exit 1
  fi
  (($(date +%s) >= end)) && break
  sleep 30
done
echo "error-rate check passed over ${watch}s"

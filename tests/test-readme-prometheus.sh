#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Checks the ```yaml blocks of README.md's "Operating a bridge" section with
# Debian's promtool: the scrape configuration (with the rules as its rule
# file), then the alert rules against series shaped like a bridge in
# trouble, so that each rule is known to fire, and to fire alone. TAP.
set -u

readme=${TWP_README:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; }

echo "1..4"

awk -v dir="$tmp" '
  /^## / { in_section = ($0 == "## Operating a bridge") }
  in_section && /^```yaml$/ { block++; inside = 1; next }
  in_section && inside && /^```$/ { inside = 0; next }
  in_section && inside { print > (dir "/block" block ".yml") }
' "$readme"
blocks=$(ls "$tmp"/block*.yml 2>/dev/null | wc -l)
if [ "$blocks" -eq 2 ]; then ok "the section has 2 yaml blocks"; else not_ok "the section has 2 yaml blocks (found $blocks)"; fi

if ! command -v promtool >/dev/null; then
  # scripts/install-deps.sh installs it (package prometheus).
  not_ok "promtool is installed"
  exit 1
fi

cp "$tmp/block2.yml" "$tmp/rules.yml"
{ cat "$tmp/block1.yml"; printf 'rule_files:\n  - rules.yml\n'; } > "$tmp/prometheus.yml"
if out=$(cd "$tmp" && promtool check config prometheus.yml 2>&1); then
  ok "promtool accepts the scrape configuration"
else
  not_ok "promtool accepts the scrape configuration"; echo "$out" | sed 's/^/# /'
fi
if out=$(promtool check rules "$tmp/rules.yml" 2>&1); then
  ok "promtool accepts the alert rules"
else
  not_ok "promtool accepts the alert rules"; echo "$out" | sed 's/^/# /'
fi

# Bridge "sick": 2 bad-path refusals a second (and ordinary web traffic,
# which must not alert), 95 of 100 connections, a failing ExtORPort.
# Bridge "fine": traffic and nothing else. Only "sick" alerts, each rule once.
cat > "$tmp/test.yml" <<'YAML'
rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'tor_websocket_proxy_handshakes_refused_total{instance="sick",reason="bad_path"}'
        values: '0+120x40'
      - series: 'tor_websocket_proxy_handshakes_refused_total{instance="sick",reason="not_websocket"}'
        values: '0+600x40'
      - series: 'tor_websocket_proxy_connections_open{instance="sick"}'
        values: '95x40'
      - series: 'tor_websocket_proxy_connections_max{instance="sick"}'
        values: '100x40'
      - series: 'tor_websocket_proxy_extorport_failures_total{instance="sick",kind="cookie"}'
        values: '0+1x40'
      - series: 'tor_websocket_proxy_handshakes_refused_total{instance="fine",reason="bad_path"}'
        values: '0+1x40'
      - series: 'tor_websocket_proxy_connections_open{instance="fine"}'
        values: '50x40'
      - series: 'tor_websocket_proxy_connections_max{instance="fine"}'
        values: '100x40'
      - series: 'tor_websocket_proxy_extorport_failures_total{instance="fine",kind="cookie"}'
        values: '0x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: WebSocketBridgeRefusalsSpiking
        exp_alerts:
          - exp_labels: { severity: warning, instance: sick, reason: bad_path }
            exp_annotations: { summary: 'sick refuses 2/s handshakes (bad_path)' }
      - eval_time: 30m
        alertname: WebSocketBridgeAtConnectionCap
        exp_alerts:
          - exp_labels: { severity: critical, instance: sick }
            exp_annotations: { summary: 'sick is at its connection cap' }
      - eval_time: 30m
        alertname: WebSocketBridgeExtORPortFailing
        exp_alerts:
          - exp_labels: { severity: critical, instance: sick }
            exp_annotations: { summary: 'sick cannot hand connections to tor' }
YAML
if out=$(cd "$tmp" && promtool test rules test.yml 2>&1); then
  ok "each alert fires for the bridge in trouble, and only for it"
else
  not_ok "each alert fires for the bridge in trouble, and only for it"; echo "$out" | sed 's/^/# /'
fi
exit $failed

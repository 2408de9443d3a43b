#!/bin/sh
# Prints the PrometheusRule of examples/kubernetes, made from the shipped alert
# rules (examples/rules/veeam_failover.rules.yml), so that both stay one set of
# rules. Regenerate with `make kubernetes-rules`; .ci/run checks it is current.
set -eu
cd "$(dirname "$0")/../.."
rules=examples/rules/veeam_failover.rules.yml
cat <<HEADER
# Generated from $rules by
# examples/kubernetes/generate-prometheusrule.sh (make kubernetes-rules). Do not edit.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: veeam-failover-exporter
  labels:
    app.kubernetes.io/name: veeam-failover-exporter
spec:
HEADER
# The rules file's own header comments stay there; its body moves under spec.
grep -v '^#' "$rules" | sed -e 's/^\(.\)/  \1/'

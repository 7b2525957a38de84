#!/bin/bash
# run.sh - make run: the whole system for about a minute, then a clean stop and a summary.
#
# Usage: experiments/run.sh [--nf-config FILE] [--nemod-config FILE] [--duration SECONDS]
#                           [--stream-clients N]
# Starts nemo-nf on memif with nemo-gen driving a varying load, mosquitto, and nemod
# (harvesting when this nemod has it) with the sample functions deployed, invokes them over
# HTTP and MQTT beside a background stream of CPU-bound calls (N clients, default 2) and a
# packet-triggered sensor fed by the NF's fn module (nemo-gen's flow 1), and prints one live
# line per second for the NF core: NF rate, busy, spare, harvested (from cgroup accounting),
# warm instances, invocations and their start paths, stream calls done, packets handled.
# The summary says what bounds the harvest, shows queue wait apart from run time, and what
# the packet function handled (packets, batches, replies).
# Logs and summary.md go to results/run-<time>/. experiments/run_nf.sh runs only NF + gen.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,14p' "$0"; exit 0 ;; esac
exec /usr/bin/python3 experiments/nemo_experiment.py live "$@"

#!/usr/bin/env bash
# get_phases.sh KIND [--warm]: times `harmony commit` on A, `sync` and `get .`
# on B (the real binary, separate processes, 127.0.0.1 only) on one of the
# peers harness datasets (KIND: media = 16 x 64 MiB, small = 20,000 x 4 KiB),
# and prints the get's user/system CPU and peak RSS. --warm first writes and
# deletes 1.2 GiB, so that the get does not pay the VM's first touch of
# freshly freed memory (on the project's machine: 2.6-3.8 s -> ~2.05 s).
#
#   cargo build --release && scripts/get_phases.sh media --warm
#
# HARMONY_BIN: the binary (default target/release/harmony); DATASET_SH: the
# peers harness's dataset.sh (default ../shared/peers/dataset.sh); WORK: the
# scratch folder (default /tmp/harmony-phases, emptied first).
set -euo pipefail
KIND=${1:?usage: get_phases.sh media|small [--warm]}
WARM=${2:-}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${HARMONY_BIN:-$HERE/target/release/harmony}
DATASET_SH=${DATASET_SH:-$HERE/../shared/peers/dataset.sh}
WORK=${WORK:-/tmp/harmony-phases}
PORT_A=18841 PORT_B=18842

rm -rf "$WORK"; mkdir -p "$WORK/A" "$WORK/B"
"$DATASET_SH" "$WORK/A" "$KIND" >/dev/null
"$BIN" -C "$WORK/A" -q init --name A --listen 127.0.0.1:$PORT_A >/dev/null
"$BIN" -C "$WORK/B" -q init --name B --listen 127.0.0.1:$PORT_B >/dev/null
id_a=$("$BIN" -C "$WORK/A" id | head -n 1)
id_b=$("$BIN" -C "$WORK/B" id | head -n 1)
"$BIN" -C "$WORK/A" -q peer add B "$id_b" 127.0.0.1:$PORT_B
"$BIN" -C "$WORK/B" -q peer add A "$id_a" 127.0.0.1:$PORT_A
"$BIN" -C "$WORK/A" serve --listen 127.0.0.1:$PORT_A >"$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
sleep 0.5
sync

timed() {  # LABEL COMMAND...
  local label=$1 start=$EPOCHREALTIME
  shift
  "$@" >/dev/null
  printf '%.3f s  %s\n' "$(echo "$EPOCHREALTIME - $start" | bc)" "$label"
}
timed "commit on A" "$BIN" -C "$WORK/A" -q commit
timed "sync A on B" "$BIN" -C "$WORK/B" -q sync A
if [ "$WARM" = --warm ]; then
  dd if=/dev/zero of="$WORK/warm" bs=1M count=1200 2>/dev/null
  rm "$WORK/warm"
fi
/usr/bin/time -f '%e s  get . on B (%U s user, %S s system, peak RSS %M KiB)' \
  "$BIN" -C "$WORK/B" -q get . 2>&1

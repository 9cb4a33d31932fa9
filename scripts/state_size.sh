#!/bin/bash
# The state database per file: N files of 32 B in 100 folders, committed at
# a, synced to a fresh b; prints state.db bytes per file at each (after a
# checkpoint and VACUUM). Usage: scripts/state_size.sh BIN [N]
set -e
BIN=${1:?usage: state_size.sh BIN [N]}; N=${2:-20000}; D=$(mktemp -d /tmp/harmony-state-size.XXXX)
mkdir -p $D/a $D/b
for f in $(seq 0 99); do mkdir -p $D/a/dir$f; done
python3 - "$D/a" "$N" <<'PY'
import sys,os
root,n=sys.argv[1],int(sys.argv[2])
for i in range(n):
    with open(f"{root}/dir{i%100}/file-{i:07d}.dat","wb") as f: f.write(os.urandom(32))
PY
$BIN -C $D/a init --name a --listen 127.0.0.1:0 -q >/dev/null
$BIN -C $D/b init --name b --listen 127.0.0.1:0 -q >/dev/null
$BIN -C $D/a -q commit
AID=$($BIN -C $D/a --json id | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
BID=$($BIN -C $D/b --json id | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
$BIN -C $D/a serve --listen 127.0.0.1:0 --json > $D/serve.out 2>/dev/null &
SP=$!
for i in $(seq 50); do [ -s $D/serve.out ] && break; sleep 0.1; done
ADDR=$(python3 -c 'import json,sys;print(json.loads(open(sys.argv[1]).readline())["listen"])' $D/serve.out)
$BIN -C $D/a peer add b $BID 127.0.0.1:1 -q >/dev/null
$BIN -C $D/b peer add a $AID $ADDR -q >/dev/null
$BIN -C $D/b -q sync a
kill $SP; wait $SP 2>/dev/null || true
for l in a b; do
  python3 -c "import sqlite3,sys;c=sqlite3.connect(sys.argv[1]);c.execute('PRAGMA wal_checkpoint(TRUNCATE)');c.execute('VACUUM')" $D/$l/.harmony/state.db
  S=$(stat -c %s $D/$l/.harmony/state.db)
  echo "$l: $S bytes, $((S / N)) B per file"
done
rm -rf $D

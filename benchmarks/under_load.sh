#!/bin/bash
# Under load: `tprm run quickstart` of this checkout (threads auto) against a reference checkout
# (REFERENCE, default /work/main; issue 26 compares b2bb09f: threads 1, vmap) while one core is taken by a busy loop; two runs each, in turn.
#   flock /tmp/tprm-heavy.lock bash benchmarks/under_load.sh
python3 -c "while True: pass" &
BURN=$!
sleep 1
for i in 1 2; do
for side in machine main; do
  H=$(mktemp -d)
  uptime
  s=$(date +%s.%N)
  env PYTHONPATH=$([ $side = main ] && echo ${REFERENCE:-/work/main} || echo $PWD) TPRM_HOME=$H /work/main/.venv/bin/tprm run quickstart > /dev/null 2>&1
  e=$(date +%s.%N)
  echo "$side run $i: $(echo "$e - $s" | bc) s wall"
  rm -rf $H
done
done
kill $BURN

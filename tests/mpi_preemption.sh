#!/usr/bin/env bash
# Preemption and crashes under mpirun, against an uninterrupted run at the same rank count:
#  1. SIGUSR1 to mpirun mid-run: every rank stops at the same step, a checkpoint is committed, exit 75;
#     the resumed run ends identical to the bit (weights.h5, scores.h5, metrics without timing columns).
#  2. SIGKILL of one rank while checkpoints are being written (one every step): the job ends; the
#     resume starts from the last complete checkpoint and again ends identical to the bit.
set -u
mpiexec=$1
sama=$2
src=$3
np=${4:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deck="$src/inputs/smoke.toml"
common=(--set train.steps=30000 --set train.batch_size=66 --set meta.batch_size=66 --set train.log_interval=2000
        --set train.eval_interval=5000)
fail() { echo "FAIL: $*"; exit 1; }
strip_timing() { cut -d, -f1-8,11-13 "$1"; }  # without samples_per_s, comm_hidden, elapsed_s
now() { date +%s.%N; }

"$mpiexec" -n "$np" --oversubscribe "$sama" train "$deck" --out "$work/straight" "${common[@]}" >"$work/straight.log" 2>&1 ||
  fail "uninterrupted run failed: $(tail -n 3 "$work/straight.log")"

# 1. SIGUSR1 to mpirun.
"$mpiexec" -n "$np" --oversubscribe "$sama" train "$deck" --out "$work/usr1" "${common[@]}" \
  --set checkpoint.every_steps=5000 >"$work/usr1.log" 2>&1 &
pid=$!
# Signal once training is under way (the first metrics row exists), whatever the machine's speed.
for _ in $(seq 600); do [ "$(wc -l <"$work/usr1/metrics.csv" 2>/dev/null || echo 0)" -ge 2 ] && break; sleep 0.05; done
sent=$(now)
kill -USR1 "$pid"
wait "$pid"
rc=$?
done_at=$(now)
echo "SIGUSR1: exit $rc after $(echo "$done_at - $sent" | bc) s"
grep -E "stopped at step|checkpoint at step" "$work/usr1.log" | tail -n 2
[ $rc -eq 75 ] || fail "exit code $rc, expected 75 (requeue): $(tail -n 5 "$work/usr1.log")"
[ ! -e "$work/usr1/summary.json" ] || fail "a stopped run wrote summary.json"
grep -q "stopped at step" "$work/usr1.log" || fail "no stop message"
"$mpiexec" -n "$np" --oversubscribe "$sama" train "$deck" --out "$work/usr1" --resume "$work/usr1" "${common[@]}" \
  --set checkpoint.every_steps=5000 >"$work/usr1b.log" 2>&1 || fail "resume failed: $(tail -n 3 "$work/usr1b.log")"
grep "resuming from" "$work/usr1b.log"
cmp "$work/straight/weights.h5" "$work/usr1/weights.h5" || fail "weights.h5 differs after SIGUSR1 + resume"
cmp "$work/straight/scores.h5" "$work/usr1/scores.h5" || fail "scores.h5 differs after SIGUSR1 + resume"
diff <(strip_timing "$work/straight/metrics.csv") <(strip_timing "$work/usr1/metrics.csv") >/dev/null ||
  fail "metrics differ after SIGUSR1 + resume"
echo "SIGUSR1 + resume: bitwise identical to the uninterrupted run"

# 2. SIGKILL one rank while it writes checkpoints (every step; a shorter run, as each commit fsyncs).
short=(--set train.steps=400 --set train.batch_size=66 --set meta.batch_size=66 --set train.log_interval=100
       --set train.eval_interval=200)
"$mpiexec" -n "$np" --oversubscribe "$sama" train "$deck" --out "$work/straight2" "${short[@]}" >"$work/straight2.log" 2>&1 ||
  fail "uninterrupted short run failed"
"$mpiexec" -n "$np" --oversubscribe "$sama" train "$deck" --out "$work/kill" "${short[@]}" \
  --set checkpoint.every_steps=1 >"$work/kill.log" 2>&1 &
pid=$!
# Kill once a few checkpoints have been committed, i.e. in the middle of writing the next ones.
for _ in $(seq 600); do [ "$(find "$work/kill/checkpoints" -name "step_*.h5" 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.05; done
victim=$(pgrep -P "$pid" -f "sama train" | head -n 1)
[ -n "$victim" ] || fail "no rank process found"
killed=$(now)
kill -KILL "$victim"
wait "$pid"
rc=$?
ended=$(now)
echo "SIGKILL of rank process $victim: job ended with exit $rc after $(echo "$ended - $killed" | bc) s"
[ $rc -ne 0 ] || fail "the job exited 0 after a rank was killed"
find "$work/kill/checkpoints" -name "step_*" | sort | tail -n 3
"$mpiexec" -n "$np" --oversubscribe "$sama" train "$deck" --out "$work/kill" --resume "$work/kill" "${short[@]}" \
  --set checkpoint.every_steps=1 >"$work/killb.log" 2>&1 || fail "resume after SIGKILL failed: $(tail -n 3 "$work/killb.log")"
grep -E "resuming from|skipping damaged" "$work/killb.log"
cmp "$work/straight2/weights.h5" "$work/kill/weights.h5" || fail "weights.h5 differs after SIGKILL + resume"
cmp "$work/straight2/scores.h5" "$work/kill/scores.h5" || fail "scores.h5 differs after SIGKILL + resume"
diff <(strip_timing "$work/straight2/metrics.csv") <(strip_timing "$work/kill/metrics.csv") >/dev/null ||
  fail "metrics differ after SIGKILL + resume"
echo "SIGKILL + resume: bitwise identical to the uninterrupted run"

#!/usr/bin/env bash
# Runs one libFuzzer target for ctest:
#
#   run_fuzz.sh replay|fuzz|fuzz-triage TARGET WORK_DIR RSS_MB SECONDS MAX_LEN SEED_DIR...
#
# replay: every file of the seed directories once (-runs=0). fuzz: mutate from those seeds for
# SECONDS (new inputs go to WORK_DIR/corpus-NAME, reproducers to WORK_DIR/artifacts/). Either fails
# on any crash, sanitizer report, leak, timeout or out-of-memory, and prints the number of executions.
#
# fuzz-triage (the HDF5 target): the same, but the fuzzer keeps going after a crash (-fork=1
# -ignore_crashes=1) and every crash is replayed and classified afterwards: one whose stack reaches
# libhdf5 before any sama frame is a crash of the HDF5 library itself on a corrupt file (reported,
# with its reproducer, but not failed: HDF5 1.10 is not robust to hostile files, and sama cannot
# prevent it); any other crash, and any timeout or out-of-memory, fails. SAMA_FUZZ_STRICT=1 fails on
# HDF5 crashes too.
set -u
mode=$1 target=$2 work=$3 rss=$4 seconds=$5 max_len=$6
shift 6
name=$(basename "$target")
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work/artifacts" "$work/corpus-$name"
log="$work/$name-$mode.log"
# HDF5's own leaks on corrupt files are suppressed (lsan.supp); every other leak is a finding.
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# A size read from a corrupt file may make HDF5 ask malloc for terabytes: without ASan, malloc returns
# NULL (and HDF5 may then crash on it, which the triage shows); let ASan behave the same.
export ASAN_OPTIONS="allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
opts=(-rss_limit_mb="$rss" -timeout=30 -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-")

case $mode in
  replay)
    "$target" "${opts[@]}" -runs=0 "$@" >"$log" 2>&1
    ;;
  fuzz)
    "$target" "${opts[@]}" -max_total_time="$seconds" -max_len="$max_len" "$work/corpus-$name" "$@" >"$log" 2>&1
    ;;
  fuzz-triage)
    rm -f "$work/artifacts/$name-"*
    "$target" "${opts[@]}" -fork=1 -ignore_crashes=1 -ignore_ooms=0 -ignore_timeouts=0 \
      -max_total_time="$seconds" -max_len="$max_len" "$work/corpus-$name" "$@" >"$log" 2>&1
    ;;
  *)
    echo "unknown mode $mode"
    exit 2
    ;;
esac
rc=$?

if [ "$mode" = fuzz-triage ]; then
  # Fork mode's progress lines: "#N: cov: ... oom/timeout/crash: O/T/C time: ...".
  execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -1)
  hdf5=0 ours=0
  for a in "$work/artifacts/$name-"crash-* "$work/artifacts/$name-"leak-*; do
    [ -f "$a" ] || continue
    "$target" -runs=1 "$a" >"$a.txt" 2>&1
    # The first frame that is either in libhdf5 or in sama's own code decides.
    where=$(awk '/^ +#[0-9]+ / { if ($0 ~ /libhdf5/) { print "hdf5"; exit }
                                  if ($0 ~ / in (sama::|LLVMFuzzerTestOneInput)/) { print "sama"; exit } }' "$a.txt")
    if [ "$where" = hdf5 ] && [ -z "${SAMA_FUZZ_STRICT:-}" ]; then
      hdf5=$((hdf5 + 1))
      echo "HDF5 library crash (not in sama) on a corrupt file, reproducer $a:"
    else
      ours=$((ours + 1))
      echo "CRASH in sama code, reproducer $a:"
    fi
    grep -E '^==[0-9]+==ERROR|^SUMMARY|^ +#[0-9]+ ' "$a.txt" | head -14
  done
  if [ $ours -ne 0 ] || { [ $rc -ne 0 ] && [ $((ours + hdf5)) -eq 0 ]; }; then
    tail -n 40 "$log"
    echo "$name $mode: FAILED (exit $rc) after ${execs:-?} executions: $ours crash(es) in sama code," \
         "$hdf5 in the HDF5 library"
    exit 1
  fi
  echo "$name $mode: ${execs:-?} executions, 0 crashes in sama code ($hdf5 crash(es) inside the HDF5" \
       "library on corrupt files, listed above)"
  exit 0
fi

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
if [ $rc -ne 0 ] || grep -qE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error:|FINDING' "$log"; then
  tail -n 60 "$log"
  echo "$name $mode: FAILED (exit $rc) after ${execs:-?} executions; reproducer(s) in $work/artifacts/"
  exit 1
fi
grep -E '^(INFO: seed corpus|#[0-9]+ +(INITED|DONE))' "$log" | tail -3
echo "$name $mode: ${execs:-?} executions, 0 crashes"

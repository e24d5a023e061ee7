#!/bin/sh
# scripts/run-tests.sh MODE BIN...: run test binaries one by one, each under a time limit,
# and print one closing line "N passed, N failed, N skipped".
#
# A test passes with exit 0, is skipped with exit 77 (it needs something absent and said so
# loudly), and fails otherwise, including a sanitizer report (the sanitizers are set to exit
# non-zero on the first report) or running past RF_TEST_TIMEOUT_S (default 300 s).
set -u
mode=$1
shift
limit=${RF_TEST_TIMEOUT_S:-300}
here=$(cd "$(dirname "$0")" && pwd)

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$here/tsan.supp"
export LSAN_OPTIONS="suppressions=$here/lsan.supp"

pass=0
fail=0
skip=0
failed=""
for bin in "$@"; do
    name=${bin#build/}
    start=$(date +%s.%N)
    timeout -k 5 "$limit" "$bin"
    rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    case $rc in
    0) pass=$((pass + 1)); printf '[%s] PASS %s (%.1f s)\n' "$mode" "$name" "$secs" ;;
    77) skip=$((skip + 1)); printf '[%s] SKIP %s\n' "$mode" "$name" ;;
    124|137) fail=$((fail + 1)); failed="$failed $name"
        printf '[%s] FAIL %s: timed out after %s s\n' "$mode" "$name" "$limit" ;;
    *) fail=$((fail + 1)); failed="$failed $name"
        printf '[%s] FAIL %s: exit %d\n' "$mode" "$name" "$rc" ;;
    esac
done
[ -n "$failed" ] && printf '[%s] failed:%s\n' "$mode" "$failed"
printf '%s: %d passed, %d failed, %d skipped\n' "$mode" "$pass" "$fail" "$skip"
# `make test` adds the modes up into one closing line.
[ -n "${RF_TEST_COUNTS:-}" ] && echo "$pass $fail $skip" >> "$RF_TEST_COUNTS"
[ "$fail" -eq 0 ]

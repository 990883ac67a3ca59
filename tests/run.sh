#!/usr/bin/env bash
# Runs every test binary and fuzz-corpus replay in $BUILD, then prints the
# plain closing line "N passed, N failed" summed over all of them.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
export PL_BIN="$PWD/$BUILD/probelogits"  # the CLI the CLI tests run
passed=0 failed=0 broken=0
for t in "$BUILD"/test_* "$BUILD"/replay_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  if [[ $name == replay_* ]]; then
    corpus="fuzz/corpus/${name#replay_fuzz_}"
    out=$("$t" "$corpus" 2>&1); rc=$?
  else
    out=$("$t" 2>&1); rc=$?
  fi
  line=$(printf '%s\n' "$out" | grep -E '^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed$' | tail -n1)
  if [ -z "$line" ]; then
    printf '%s\n' "$out" | tail -n 20
    echo "$name: crashed or printed no result (rc=$rc)"
    broken=$((broken + 1)); failed=$((failed + 1)); continue
  fi
  echo "$line"
  p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); echo "$name: exit $rc"; fi
  [ "$rc" -ne 0 ] && printf '%s\n' "$out" | grep -E '^FAIL|ERROR|Sanitizer' | head -n 20
done
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]

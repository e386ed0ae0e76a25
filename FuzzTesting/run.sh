#!/usr/bin/env bash
# Builds the Halyard fuzzers (FuzzTesting/, its own SwiftPM package and scratch path) with
# libFuzzer + AddressSanitizer, then runs them. See FuzzTesting/README.md.
#
#   FuzzTesting/run.sh --ci                  each fuzzer 60 s on a temp copy of its seed corpus;
#                                            prints PASS/FAIL per fuzzer and "fuzz: N passed, N failed"
#   FuzzTesting/run.sh [FUZZER...]           long run: FUZZ_SECONDS (default 3600) per fuzzer, growing
#                                            the corpus in FuzzTesting/.build-fuzz-corpus/<Fuzzer>/
#   FuzzTesting/run.sh --build-only          just build
#   FuzzTesting/run.sh ... -- -ARG=VALUE     extra libFuzzer arguments
#
# Limits: 2 GiB RSS, and 256 MiB for any single allocation (nothing in a target that bounds PDUs
# to ~128 KiB and transfers to 1 MiB needs more: a bigger malloc is an amplification bug).
#
# Environment: FUZZ_SECONDS (long runs), FUZZ_CI_SECONDS (CI runs, default 60), FUZZ_JOBS (long
# runs: libFuzzer -fork=N workers), FUZZ_CONFIG (release [default] or debug), HALYARD_FUZZ_STRICT=1
# (known issues of the sources become failures; see README.md), FUZZ_SKIP_REGRESSIONS=1 (do not run
# FailCases/ first: to fuzz past a reported, still unfixed bug).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRATCH="$HERE/.build-fuzz"
CONFIG=${FUZZ_CONFIG:-release}
ALL_FUZZERS=(FuzzPDUDecoder FuzzTargetConnection FuzzPoolImport FuzzStoreWAL FuzzRebuildLog)

mode=long
fuzzers=()
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ci) mode=ci ;;
    --build-only) mode=build ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) fuzzers+=("$1") ;;
  esac
  shift
done
[[ ${#fuzzers[@]} -gt 0 ]] || fuzzers=("${ALL_FUZZERS[@]}")

max_len() {
  case "$1" in
    FuzzPDUDecoder) echo 16384 ;;
    FuzzTargetConnection) echo 32768 ;;
    FuzzPoolImport) echo 4096 ;;   # edit lists over the pool's metadata regions
    FuzzStoreWAL) echo 16384 ;;    # a WAL (and a snapshot) of a small store
    FuzzRebuildLog) echo 4096 ;;   # a dirty-segment log: an 88-byte header, 12-byte records
    *) echo 16384 ;;
  esac
}

# --- Build ------------------------------------------------------------------------------------
# --sanitize=fuzzer (rather than -Xswiftc -sanitize=fuzzer) makes SwiftPM link libFuzzer's main
# instead of renaming the executable's entry point, and instruments the C target (CRC32C) too.
# -parse-as-library: the fuzzers have no top-level code (also set per target in Package.swift).
# Release by default: the optimized build runs ~8x more inputs per second than debug (SwiftNIO's
# generic ByteBuffer code is very slow unoptimized), and -assert-config Debug keeps `assert`
# checks on, so it checks what a debug build checks.
# -Xswiftc -sanitize=fuzzer,address: SwiftPM passes the two sanitizers to swiftc as two
# -sanitize= options, and the Swift 6.3 frontend keeps only the last one, so without this the Swift
# code got ASan but no coverage instrumentation (libFuzzer saw only the C targets' ~500 counters).
build_cmd=(swift build --package-path "$HERE" --scratch-path "$SCRATCH" -c "$CONFIG"
           --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
[[ $CONFIG == release ]] && build_cmd+=(-Xswiftc -assert-config -Xswiftc Debug)
mkdir -p "$SCRATCH"
build_log="$SCRATCH/build-$CONFIG.log"
echo "fuzz: building ($CONFIG): ${build_cmd[*]}" >&2
build_start=$SECONDS
if ! "${build_cmd[@]}" >"$build_log" 2>&1; then
  # ld.gold warns about every ASan symbol it cannot export; keep only the useful lines.
  grep -v "Cannot export local symbol" "$build_log" | tail -40 >&2
  echo "fuzz: build failed (full log: $build_log)" >&2
  echo "fuzz: 0 passed, ${#fuzzers[@]} failed"
  exit 1
fi
bin=$("${build_cmd[@]}" --show-bin-path)
echo "fuzz: built in $((SECONDS - build_start)) s: $bin" >&2
[[ $mode == build ]] && exit 0

# The Swift runtime's crash backtracer fights ASan for the crashing thread; libFuzzer and ASan
# print the stack themselves.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:handle_abort=1:symbolize=1}

passed=0
failed=0

# FailCases/<Fuzzer>/*: inputs that crashed once (or still do: a reported, unfixed bug) and must
# not any more. Prints the first one that fails; its output goes to $2.
run_regressions() {
  local name=$1 log=$2 dir="$HERE/FailCases/$1" f
  [[ -d $dir && -z ${FUZZ_SKIP_REGRESSIONS:-} ]] || return 0
  for f in "$dir"/*; do
    [[ -f $f ]] || continue
    if ! "$bin/$name" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=30 "$f" >"$log" 2>&1; then
      echo "$f"
      return 1
    fi
  done
}

for name in "${fuzzers[@]}"; do
  if [[ ! -x "$bin/$name" ]]; then
    echo "FAIL fuzz-$name (no such fuzzer: $bin/$name)"
    failed=$((failed + 1))
    continue
  fi
  dict=()
  [[ -f "$HERE/$name.dict" ]] && dict=(-dict="$HERE/$name.dict")
  if [[ $mode == ci ]]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/halyard-fuzz-$name.XXXXXX")
    mkdir -p "$work/corpus" "$work/artifacts"
    [[ -d "$HERE/Corpus/$name" ]] && cp -R "$HERE/Corpus/$name/." "$work/corpus/"
    log="$work/fuzz.log"
    if ! regression=$(run_regressions "$name" "$work/regressions.log"); then
      echo "FAIL fuzz-$name (crash: $regression)"
      {
        echo "---- fuzz-$name: FailCases input still fails: $regression"
        grep -v "^INFO: \|^#[0-9]" "$work/regressions.log" | tail -40
        echo "---- reproduce: $bin/$name $regression"
      } >&2
      failed=$((failed + 1))
      continue
    fi
    set +e
    "$bin/$name" "$work/corpus" "${dict[@]}" \
      -max_total_time="${FUZZ_CI_SECONDS:-60}" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=30 \
      -max_len="$(max_len "$name")" -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" "${extra[@]}" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [[ $rc -eq 0 ]]; then
      echo "PASS fuzz-$name (${execs:-?} execs)"
      passed=$((passed + 1))
      rm -rf "$work"
    else
      artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
      echo "FAIL fuzz-$name (crash: ${artifact:-none written, exit $rc; log $log})"
      {
        echo "---- fuzz-$name: last lines of $log"
        grep -v "^INFO: \|^#[0-9]" "$log" | tail -60
        echo "---- reproduce: $bin/$name ${artifact:-<artifact>}"
      } >&2
      failed=$((failed + 1))
    fi
  else
    corpus="$HERE/.build-fuzz-corpus/$name"
    artifacts="$HERE/.build-fuzz-artifacts/$name"
    mkdir -p "$corpus" "$artifacts"
    jobs=()
    [[ -n ${FUZZ_JOBS:-} ]] && jobs=(-fork="$FUZZ_JOBS")
    echo "fuzz: $name for ${FUZZ_SECONDS:-3600} s; corpus $corpus; crashes go to $artifacts/" >&2
    set +e
    # The first directory is the working corpus (new inputs are written there); the seed corpus
    # is only read.
    "$bin/$name" "$corpus" "$HERE/Corpus/$name" "${dict[@]}" "${jobs[@]}" \
      -max_total_time="${FUZZ_SECONDS:-3600}" -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=30 \
      -max_len="$(max_len "$name")" -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "${extra[@]}"
    rc=$?
    set -e
    if [[ $rc -eq 0 ]]; then
      echo "PASS fuzz-$name"
      passed=$((passed + 1))
    else
      echo "FAIL fuzz-$name (crash: see $artifacts/)"
      failed=$((failed + 1))
    fi
  fi
done

echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]

# Helpers shared by the host-side interop suites that run their own boot (ana.sh, nvmet.sh).
# Sourced (bash) after the suite sets nothing of its own; defines the check bookkeeping:
#   pass NAME [DETAIL]   "PASS NAME" (+ a note with DETAIL)
#   fail NAME [REASON]   "FAIL NAME (REASON)", REASON on one line, cut to 400 characters
#   note TEXT...         an indented "  | " line
#   excerpt FILE N [LABEL]  the last N lines of FILE, indented
#   finish               every check of CHECKS not reported fails with $NOTRUN; then the suite's
#                        `cleanup`, the "logs:" line and the one "SUITE: N passed, N failed" line;
#                        exit status 0 only when nothing failed
# and NPASS, NFAIL, REPORTED (names reported so far) and CHECKS (the suite's "# CHECKS:" line).
# The suite sets SUITE (its name), LOGDIR, NOTRUN, SUMMARY_DONE and defines `cleanup`.

NPASS=0 NFAIL=0
declare -A REPORTED=()
pass() { echo "PASS $1"; NPASS=$((NPASS + 1)); REPORTED[$1]=1; [ -n "${2:-}" ] && note "$1: $2"; return 0; }
fail() { echo "FAIL $1 ($(printf '%s' "${2:-}" | tr '\n' ' ' | sed 's/ *$//' | cut -c1-400))"; NFAIL=$((NFAIL + 1)); REPORTED[$1]=1; return 0; }
note() { echo "  | $*"; }
excerpt() {   # excerpt FILE N [LABEL]: last N lines of FILE, indented
    [ -s "$1" ] || return 0
    note "--- ${3:-${1##*/}} (last $2 lines)"
    tail -n "$2" "$1" | tr -d '\r' | cut -c1-300 | sed 's/^/  | /'
}
CHECKS=$(sed -n 's/^# CHECKS: //p' "$0")
finish() {
    local c
    for c in $CHECKS; do [ -n "${REPORTED[$c]:-}" ] || fail "$c" "$NOTRUN"; done
    SUMMARY_DONE=1
    trap - EXIT
    cleanup
    echo "logs: $LOGDIR/"
    echo "$SUITE: $NPASS passed, $NFAIL failed"
    [ "$NFAIL" = 0 ] && exit 0
    exit 1
}

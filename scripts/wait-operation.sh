#!/usr/bin/env bash
# Waits for an operation: polls GET /operations/{id}, honouring Retry-After. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] [--interval SECONDS] OPERATION_ID

Polls operation OPERATION_ID on the Toygres server at \$TOYGRES_URL (default
http://127.0.0.1:8080) until it has ended, as often as the server's Retry-After header says (else
every --interval seconds, default 1). Shows each change on stderr, then prints the operation's
JSON on stdout. Rides out a server that answers 429/502/503/504, or that stops answering after it
has answered once (a restart), for up to 60 s in a row. Every step on the server has a deadline; to bound the wait anyway, use
timeout(1): timeout 300 $SCRIPT_NAME op_... Sends \$TOYGRES_TOKEN as a bearer token when set.

Exit codes: 0 succeeded, 1 failed or canceled, 2 usage, 3 server unreachable, 4 no such
operation, 6 any other error, 7 refused (401: missing or wrong token).
USAGE
}

interval=1 operation=""
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --interval) interval="${2:?--interval needs a value}"; shift 2 ;;
    -*) usage >&2; toygres_fail "$EXIT_USAGE" "unknown option '$1'" ;;
    *)
        [[ -z "$operation" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "one OPERATION_ID only"; }
        operation="$1"; shift ;;
    esac
done
[[ -n "$operation" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "OPERATION_ID is missing"; }
[[ "$interval" =~ ^[0-9]+$ ]] || toygres_fail "$EXIT_USAGE" "--interval must be whole seconds"

# One summary line of an operation's JSON (stdin), and its status.
summarize() {
    python3 -c '
import json, sys
op = json.load(sys.stdin)
line = "{} {} {}: {}".format(op["id"], op["kind"], op["instance"], op["status"])
if op.get("step") and op["status"] != "succeeded":
    line += ", step " + op["step"]
line += " ({}/{})".format(op["progress"]["done"], op["progress"]["total"])
if op.get("error"):
    line += ": {}: {}".format(op["error"]["code"], op["error"]["message"])
print(op["status"] + "\t" + line)
'
}

path="/operations/$(toygres_urlencode "$operation")"
last_line="" outage_since="" reached=false
while :; do
    if TOYGRES_QUIET_ERRORS=1 toygres_request GET "$path"; then
        outage_since="" reached=true
        if ! IFS=$'\t' read -r status line < <(printf '%s' "$HTTP_BODY" | summarize); then
            toygres_fail "$EXIT_OTHER" "unexpected reply from GET $path: $HTTP_BODY"
        fi
        if [[ "$line" != "$last_line" ]]; then
            echo "$line" >&2
            last_line="$line"
        fi
        case "$status" in
        succeeded) printf '%s\n' "$HTTP_BODY"; exit 0 ;;
        failed | canceled) printf '%s\n' "$HTTP_BODY"; exit "$EXIT_OPERATION_FAILED" ;;
        esac
    else
        code=$?
        [[ -z "$HTTP_STATUS" ]] || reached=true
        # 429 or 502-504, or no answer from a server that answered before: poll again, up to
        # 60 s in a row. Anything else ends the wait.
        if [[ "$HTTP_STATUS" != 429 && ("$code" -ne "$EXIT_UNREACHABLE" || "$reached" != true) ]]; then
            toygres_fail "$code" "${HTTP_ERROR#"$SCRIPT_NAME: "}"
        fi
        now="$(date +%s)"
        if [[ -z "$outage_since" ]]; then
            outage_since="$now"
            echo "${HTTP_ERROR}; still waiting" >&2
        elif ((now - outage_since > 60)); then
            toygres_fail "$code" "${HTTP_ERROR#"$SCRIPT_NAME: "}"
        fi
    fi
    # Retry-After when the server sent one (at least 0.2 s, at most 30 s), else --interval.
    delay="$interval"
    if [[ "$HTTP_RETRY_AFTER" =~ ^[0-9]+$ ]]; then
        delay="$HTTP_RETRY_AFTER"
        ((delay <= 30)) || delay=30
    fi
    [[ "$delay" != 0 ]] || delay=0.2
    sleep "$delay"
done

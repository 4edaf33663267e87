#!/usr/bin/env bash
# Gives an instance's owner a new password: POST /instances/{name}/reset-password. See usage.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] NAME [--password-stdin] [--idempotency-key KEY]

Asks the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080) to give the owner of
instance NAME a new password: the one read from stdin (first line) with --password-stdin, else
a generated one. Prints the server's JSON answer on stdout: it holds the new password, shown
this once and never again, and the operation to wait for (scripts/wait-operation.sh). The old
password stops opening new connections once the operation succeeds. Sends \$TOYGRES_TOKEN as a
bearer token when set.

Exit codes: 0 accepted, 2 usage or invalid request (400/422), 3 server unreachable, 4 no such
instance, 5 conflict (409), 6 any other error, 7 refused (401/403).
USAGE
}

name="" password_stdin=false idempotency_key=""
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --password-stdin) password_stdin=true; shift ;;
    --idempotency-key) idempotency_key="${2:?--idempotency-key needs a value}"; shift 2 ;;
    -*) usage >&2; toygres_fail "$EXIT_USAGE" "unknown option '$1'" ;;
    *)
        [[ -z "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "one NAME only"; }
        name="$1"; shift ;;
    esac
done
[[ -n "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "NAME is missing"; }

password=""
if [[ "$password_stdin" == true ]]; then
    IFS= read -r password || true
    [[ -n "$password" ]] || toygres_fail "$EXIT_USAGE" "--password-stdin: stdin is empty"
fi
body_file="$(mktemp)"
trap 'rm -f "$body_file"' EXIT
# The password reaches python3 on stdin, never on a command line.
printf '%s' "$password" | python3 -c '
import json, sys
password = sys.stdin.read()
print(json.dumps({"password": password} if password else {}))
' >"$body_file"

headers=()
[[ -z "$idempotency_key" ]] || headers+=("Idempotency-Key: $idempotency_key")
toygres_request POST "/instances/$(toygres_urlencode "$name")/reset-password" "$body_file" "${headers[@]}" || exit $?
printf '%s\n' "$HTTP_BODY"
operation="$(printf '%s' "$HTTP_BODY" | toygres_json_field operation.id)"
echo "$SCRIPT_NAME: accepted; wait with: scripts/wait-operation.sh $operation" >&2

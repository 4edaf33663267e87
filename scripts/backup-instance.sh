#!/usr/bin/env bash
# Takes a backup of an instance now: POST /instances/{name}/backups. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] NAME [--type full|diff|incr] [--idempotency-key KEY]

Asks the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080) to take a backup of
running instance NAME now (full unless --type says otherwise). Prints the server's JSON answer
on stdout ({"backup", "operation"}); wait for its operation with scripts/wait-operation.sh and
see the backup with scripts/list-backups.sh. Sends \$TOYGRES_TOKEN as a bearer token when set.

Exit codes: 0 accepted, 2 usage or invalid request (422, backups off included), 3 server
unreachable, 4 no such instance, 5 conflict (409: not running, or another operation holds it),
6 any other error, 7 refused (401/403: missing, wrong or read-only token).
USAGE
}

name="" kind="" idempotency_key=""
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --type) kind="${2:?--type needs full, diff or incr}"; shift 2 ;;
    --idempotency-key) idempotency_key="${2:?--idempotency-key needs a value}"; shift 2 ;;
    -*) usage >&2; toygres_fail "$EXIT_USAGE" "unknown option '$1'" ;;
    *)
        [[ -z "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "one NAME only"; }
        name="$1"; shift ;;
    esac
done
[[ -n "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "NAME is missing"; }

body_file="$(mktemp)"
trap 'rm -f "$body_file"' EXIT
python3 -c '
import json, sys
print(json.dumps({"type": sys.argv[1]} if sys.argv[1] else {}))
' "$kind" >"$body_file"

headers=()
[[ -z "$idempotency_key" ]] || headers+=("Idempotency-Key: $idempotency_key")
toygres_request POST "/instances/$(toygres_urlencode "$name")/backups" "$body_file" "${headers[@]}" || exit $?
printf '%s\n' "$HTTP_BODY"
operation="$(printf '%s' "$HTTP_BODY" | toygres_json_field operation.id)"
echo "$SCRIPT_NAME: accepted; wait with: scripts/wait-operation.sh $operation" >&2

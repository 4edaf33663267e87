#!/usr/bin/env bash
# Deletes an instance: DELETE /instances/{name}. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] NAME [--final-backup] [--idempotency-key KEY]

Asks the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080) to delete instance NAME (a
create still running is canceled first). Prints the server's JSON answer on stdout; wait for its
operation with scripts/wait-operation.sh. Sends \$TOYGRES_TOKEN as a bearer token when set.

  --final-backup     take a full backup first (the delete fails, and the instance stays, if it
                     fails); without it the WAL up to the delete is archived all the same

Exit codes: 0 accepted, 2 usage, 3 server unreachable, 4 no such instance, 5 conflict, 6 any
other error, 7 refused (401/403: missing, wrong or read-only token).
USAGE
}

name="" idempotency_key="" final_backup=false
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --idempotency-key) idempotency_key="${2:?--idempotency-key needs a value}"; shift 2 ;;
    --final-backup) final_backup=true; shift ;;
    -*) usage >&2; toygres_fail "$EXIT_USAGE" "unknown option '$1'" ;;
    *)
        [[ -z "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "one NAME only"; }
        name="$1"; shift ;;
    esac
done
[[ -n "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "NAME is missing"; }

headers=()
[[ -z "$idempotency_key" ]] || headers+=("Idempotency-Key: $idempotency_key")
query=""
[[ "$final_backup" == false ]] || query="?final_backup=true"
toygres_request DELETE "/instances/$(toygres_urlencode "$name")$query" "" "${headers[@]}" || exit $?
printf '%s\n' "$HTTP_BODY"
operation="$(printf '%s' "$HTTP_BODY" | toygres_json_field operation.id)"
echo "$SCRIPT_NAME: accepted; wait with: scripts/wait-operation.sh $operation" >&2

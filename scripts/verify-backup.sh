#!/usr/bin/env bash
# Verifies a backup: POST /instances/{name}/backups/{id}/verify. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] NAME BACKUP_ID [--idempotency-key KEY]

Asks the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080) to prove that backup
BACKUP_ID (bk_..., from scripts/list-backups.sh) of instance NAME restores: it is restored into a
scratch server, started and read in full, then removed. Prints the server's JSON answer on
stdout; wait for its operation with scripts/wait-operation.sh (it fails with verify_failed when
the backup does not restore). Sends \$TOYGRES_TOKEN as a bearer token when set.

Exit codes: 0 accepted, 2 usage or invalid request (422), 3 server unreachable, 4 no such
instance or backup, 6 any other error, 7 refused (401/403: missing, wrong or read-only token).
USAGE
}

name="" backup="" idempotency_key=""
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --idempotency-key) idempotency_key="${2:?--idempotency-key needs a value}"; shift 2 ;;
    -*) usage >&2; toygres_fail "$EXIT_USAGE" "unknown option '$1'" ;;
    *)
        if [[ -z "$name" ]]; then name="$1"
        elif [[ -z "$backup" ]]; then backup="$1"
        else usage >&2; toygres_fail "$EXIT_USAGE" "NAME and BACKUP_ID only"; fi
        shift ;;
    esac
done
[[ -n "$name" && -n "$backup" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "NAME and BACKUP_ID are needed"; }

headers=()
[[ -z "$idempotency_key" ]] || headers+=("Idempotency-Key: $idempotency_key")
toygres_request POST "/instances/$(toygres_urlencode "$name")/backups/$(toygres_urlencode "$backup")/verify" "" "${headers[@]}" || exit $?
printf '%s\n' "$HTTP_BODY"
operation="$(printf '%s' "$HTTP_BODY" | toygres_json_field operation.id)"
echo "$SCRIPT_NAME: accepted; wait with: scripts/wait-operation.sh $operation" >&2

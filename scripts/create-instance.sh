#!/usr/bin/env bash
# Creates an instance: POST /instances. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] NAME [--postgres-version V] [--storage-gb N] [--expose internal|public]
                    [--set PARAM=VALUE]... [--deletion-protection] [--password-stdin]
                    [--restore-from SOURCE [--at TIME | --backup BACKUP_ID]]
                    [--idempotency-key KEY]

Asks the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080) to create instance NAME,
sending \$TOYGRES_TOKEN as a bearer token when set. Prints the server's JSON answer on stdout:
it holds the password, shown this once and never again, and the operation to wait for:

  $SCRIPT_NAME orders-db > create.json
  scripts/wait-operation.sh "\$(python3 -c 'import json; print(json.load(open("create.json"))["operation"]["id"])')"

  --set PARAM=VALUE  a server parameter (repeat for more), checked against pg_settings
  --deletion-protection  refuse deletes until it is turned off (update-instance.sh)
  --password-stdin   read the password from stdin (first line) instead of a generated one
  --restore-from SOURCE  start as a copy of instance SOURCE's data, from its backups (as recent
                     as possible; SOURCE may be deleted while its backups are kept)
  --at TIME          with --restore-from: the moment to restore to (RFC 3339), inside the
                     source's backup.restore_window
  --backup ID        with --restore-from: restore to the end of backup ID (bk_...)
  --idempotency-key  send Idempotency-Key: retrying with the same key and body is safe

Exit codes: 0 accepted, 2 usage or invalid request (400/422), 3 server unreachable, 5 conflict
(409: name in use), 6 any other error, 7 refused (401/403: missing, wrong or read-only token).
USAGE
}

name="" version="" storage="" expose="" password_stdin=false idempotency_key="" protection=false
restore_from="" restore_at="" restore_backup=""
assignments=()
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --postgres-version) version="${2:?--postgres-version needs a value}"; shift 2 ;;
    --storage-gb) storage="${2:?--storage-gb needs a value}"; shift 2 ;;
    --expose) expose="${2:?--expose needs a value}"; shift 2 ;;
    --password-stdin) password_stdin=true; shift ;;
    --set) assignments+=("${2:?--set needs PARAM=VALUE}"); shift 2 ;;
    --deletion-protection) protection=true; shift ;;
    --restore-from) restore_from="${2:?--restore-from needs an instance name}"; shift 2 ;;
    --at) restore_at="${2:?--at needs an RFC 3339 time}"; shift 2 ;;
    --backup) restore_backup="${2:?--backup needs a backup id}"; shift 2 ;;
    --idempotency-key) idempotency_key="${2:?--idempotency-key needs a value}"; shift 2 ;;
    -*) usage >&2; toygres_fail "$EXIT_USAGE" "unknown option '$1'" ;;
    *)
        [[ -z "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "one NAME only"; }
        name="$1"; shift ;;
    esac
done
[[ -n "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "NAME is missing"; }
if [[ -z "$restore_from" && ( -n "$restore_at" || -n "$restore_backup" ) ]]; then
    usage >&2; toygres_fail "$EXIT_USAGE" "--at and --backup need --restore-from"
fi
if [[ -n "$restore_at" && -n "$restore_backup" ]]; then
    usage >&2; toygres_fail "$EXIT_USAGE" "give --at or --backup, not both"
fi

password=""
if [[ "$password_stdin" == true ]]; then
    IFS= read -r password || true
    [[ -n "$password" ]] || toygres_fail "$EXIT_USAGE" "--password-stdin: stdin is empty"
fi

body_file="$(mktemp)"
trap 'rm -f "$body_file"' EXIT
# The password reaches python3 on stdin, never on a command line.
if ! printf '%s' "$password" | python3 -c '
import json, sys
name, version, storage, expose, protection, source, at, backup = sys.argv[1:9]
assignments = sys.argv[9:]
body = {"name": name}
password = sys.stdin.read()
if password:
    body["password"] = password
if version:
    body["postgres_version"] = version
if storage:
    body["storage_gb"] = int(storage) if storage.isdigit() else storage
if expose:
    body["expose"] = expose
if protection == "true":
    body["deletion_protection"] = True
parameters = {}
for assignment in assignments:
    if "=" not in assignment:
        sys.exit(f"--set {assignment}: expected PARAM=VALUE")
    key, value = assignment.split("=", 1)
    parameters[key] = value
if parameters:
    body["parameters"] = parameters
if source:
    body["restore_from"] = {"instance": source}
    if at:
        body["restore_from"]["point_in_time"] = at
    if backup:
        body["restore_from"]["backup_id"] = backup
print(json.dumps(body))
' "$name" "$version" "$storage" "$expose" "$protection" \
    "$restore_from" "$restore_at" "$restore_backup" "${assignments[@]}" >"$body_file"; then
    toygres_fail "$EXIT_USAGE" "invalid arguments (see -h)"
fi

headers=()
[[ -z "$idempotency_key" ]] || headers+=("Idempotency-Key: $idempotency_key")
toygres_request POST /instances "$body_file" "${headers[@]}" || exit $?
printf '%s\n' "$HTTP_BODY"
operation="$(printf '%s' "$HTTP_BODY" | toygres_json_field operation.id)"
echo "$SCRIPT_NAME: accepted; wait with: scripts/wait-operation.sh $operation" >&2

#!/usr/bin/env bash
# Creates an instance: POST /instances. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] NAME [--postgres-version V] [--storage-gb N] [--expose internal|public]
                    [--password-stdin] [--idempotency-key KEY]

Asks the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080) to create instance NAME,
sending \$TOYGRES_TOKEN as a bearer token when set. Prints the server's JSON answer on stdout:
it holds the password, shown this once and never again, and the operation to wait for:

  $SCRIPT_NAME orders-db > create.json
  scripts/wait-operation.sh "\$(python3 -c 'import json; print(json.load(open("create.json"))["operation"]["id"])')"

  --password-stdin   read the password from stdin (first line) instead of a generated one
  --idempotency-key  send Idempotency-Key: retrying with the same key and body is safe

Exit codes: 0 accepted, 2 usage or invalid request (400/422), 3 server unreachable, 5 conflict
(409: name in use), 6 any other error, 7 refused (401/403: missing, wrong or read-only token).
USAGE
}

name="" version="" storage="" expose="" password_stdin=false idempotency_key=""
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --postgres-version) version="${2:?--postgres-version needs a value}"; shift 2 ;;
    --storage-gb) storage="${2:?--storage-gb needs a value}"; shift 2 ;;
    --expose) expose="${2:?--expose needs a value}"; shift 2 ;;
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
name, version, storage, expose = sys.argv[1:5]
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
print(json.dumps(body))
' "$name" "$version" "$storage" "$expose" >"$body_file"

headers=()
[[ -z "$idempotency_key" ]] || headers+=("Idempotency-Key: $idempotency_key")
toygres_request POST /instances "$body_file" "${headers[@]}" || exit $?
printf '%s\n' "$HTTP_BODY"
operation="$(printf '%s' "$HTTP_BODY" | toygres_json_field operation.id)"
echo "$SCRIPT_NAME: accepted; wait with: scripts/wait-operation.sh $operation" >&2

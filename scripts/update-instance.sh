#!/usr/bin/env bash
# Changes an instance: PATCH /instances/{name}. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] NAME [--storage-gb N] [--set PARAM=VALUE]... [--reset PARAM]...
                    [--deletion-protection true|false] [--idempotency-key KEY]

Asks the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080) to change instance NAME:
grow its storage, set server parameters (checked against its PostgreSQL version's pg_settings;
those that need a restart restart it), return parameters to their defaults, or turn deletion
protection on or off. Prints the server's JSON answer on stdout; wait for its operation with
scripts/wait-operation.sh. Sends \$TOYGRES_TOKEN as a bearer token when set.

  $SCRIPT_NAME orders-db --set work_mem=64MB --set max_connections=200 --reset jit

Exit codes: 0 accepted, 2 usage or invalid request (400/422: the field says which), 3 server
unreachable, 4 no such instance, 5 conflict (409), 6 any other error, 7 refused (401/403).
USAGE
}

name="" storage="" protection="" idempotency_key=""
assignments=() resets=()
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --storage-gb) storage="${2:?--storage-gb needs a value}"; shift 2 ;;
    --set) assignments+=("${2:?--set needs PARAM=VALUE}"); shift 2 ;;
    --reset) resets+=("${2:?--reset needs PARAM}"); shift 2 ;;
    --deletion-protection) protection="${2:?--deletion-protection needs true or false}"; shift 2 ;;
    --idempotency-key) idempotency_key="${2:?--idempotency-key needs a value}"; shift 2 ;;
    -*) usage >&2; toygres_fail "$EXIT_USAGE" "unknown option '$1'" ;;
    *)
        [[ -z "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "one NAME only"; }
        name="$1"; shift ;;
    esac
done
[[ -n "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "NAME is missing"; }
case "$protection" in
"" | true | false) ;;
*) toygres_fail "$EXIT_USAGE" "--deletion-protection takes true or false" ;;
esac

body_file="$(mktemp)"
trap 'rm -f "$body_file"' EXIT
if ! python3 -c '
import json, sys
storage, protection = sys.argv[1:3]
count = int(sys.argv[3])
assignments, resets = sys.argv[4:4 + count], sys.argv[4 + count:]
body, parameters = {}, {}
if storage:
    body["storage_gb"] = int(storage) if storage.isdigit() else storage
if protection:
    body["deletion_protection"] = protection == "true"
for assignment in assignments:
    if "=" not in assignment:
        sys.exit(f"--set {assignment}: expected PARAM=VALUE")
    key, value = assignment.split("=", 1)
    parameters[key] = value
for key in resets:
    parameters[key] = None
if parameters:
    body["parameters"] = parameters
if not body:
    sys.exit("nothing to change: give --storage-gb, --set, --reset or --deletion-protection")
print(json.dumps(body))
' "$storage" "$protection" "${#assignments[@]}" "${assignments[@]}" "${resets[@]}" >"$body_file"; then
    toygres_fail "$EXIT_USAGE" "invalid arguments (see -h)"
fi

headers=()
[[ -z "$idempotency_key" ]] || headers+=("Idempotency-Key: $idempotency_key")
toygres_request PATCH "/instances/$(toygres_urlencode "$name")" "$body_file" "${headers[@]}" || exit $?
printf '%s\n' "$HTTP_BODY"
operation="$(printf '%s' "$HTTP_BODY" | toygres_json_field operation.id)"
echo "$SCRIPT_NAME: accepted; wait with: scripts/wait-operation.sh $operation" >&2

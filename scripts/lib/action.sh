# shellcheck shell=bash
# Shared by stop-instance.sh, start-instance.sh and restart-instance.sh (sourced after http.sh):
# POST /instances/{name}/{action} with no body.

# toygres_action_main ACTION DESCRIPTION ARG...: parses NAME [--idempotency-key KEY], sends the
# action, prints the server's JSON answer and says how to wait for its operation.
toygres_action_main() {
    local action="$1" description="$2"
    shift 2
    local usage_text
    usage_text="Usage: $SCRIPT_NAME [-h] NAME [--idempotency-key KEY]

Asks the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080) to $description.
Prints the server's JSON answer on stdout; wait for its operation with
scripts/wait-operation.sh. Sends \$TOYGRES_TOKEN as a bearer token when set.

Exit codes: 0 accepted, 2 usage, 3 server unreachable, 4 no such instance, 5 conflict (409:
another operation holds the instance, or it is not in a state this applies to), 6 any other
error, 7 refused (401/403: missing, wrong or read-only token)."
    local name="" idempotency_key=""
    while (($# > 0)); do
        case "$1" in
        -h | --help) echo "$usage_text"; exit 0 ;;
        --idempotency-key) idempotency_key="${2:?--idempotency-key needs a value}"; shift 2 ;;
        -*) echo "$usage_text" >&2; toygres_fail "$EXIT_USAGE" "unknown option '$1'" ;;
        *)
            [[ -z "$name" ]] || { echo "$usage_text" >&2; toygres_fail "$EXIT_USAGE" "one NAME only"; }
            name="$1"; shift ;;
        esac
    done
    [[ -n "$name" ]] || { echo "$usage_text" >&2; toygres_fail "$EXIT_USAGE" "NAME is missing"; }
    local headers=()
    [[ -z "$idempotency_key" ]] || headers+=("Idempotency-Key: $idempotency_key")
    toygres_request POST "/instances/$(toygres_urlencode "$name")/$action" "" "${headers[@]}" || exit $?
    printf '%s\n' "$HTTP_BODY"
    local operation
    operation="$(printf '%s' "$HTTP_BODY" | toygres_json_field operation.id)"
    echo "$SCRIPT_NAME: accepted; wait with: scripts/wait-operation.sh $operation" >&2
}

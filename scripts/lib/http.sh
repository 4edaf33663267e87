# shellcheck shell=bash disable=SC2034  # sourced: the scripts use these variables
# Shared by the curl scripts in scripts/ (sourced, not run): settings, one HTTP request, reading
# JSON with python3, and exit codes that match the toygres CLI's:
#   0 success, 1 operation failed or canceled, 2 usage (or HTTP 400/422), 3 server unreachable
#   (or HTTP 502/503/504), 4 not found (404), 5 conflict (409), 6 any other error, 7 refused
#   (401: missing or wrong token; 403: read-only token for a change).

TOYGRES_URL="${TOYGRES_URL:-http://127.0.0.1:8080}"
TOYGRES_URL="${TOYGRES_URL%/}"
SCRIPT_NAME="$(basename "$0")"

readonly EXIT_OPERATION_FAILED=1
readonly EXIT_USAGE=2
readonly EXIT_UNREACHABLE=3
readonly EXIT_NOT_FOUND=4
readonly EXIT_CONFLICT=5
readonly EXIT_OTHER=6
readonly EXIT_AUTH=7

# toygres_fail CODE MESSAGE: says MESSAGE on stderr and exits with CODE.
toygres_fail() {
    echo "$SCRIPT_NAME: $2" >&2
    exit "$1"
}

# toygres_need COMMAND...: exits 6 unless every COMMAND is installed.
toygres_need() {
    local command
    for command in "$@"; do
        command -v "$command" >/dev/null 2>&1 ||
            toygres_fail "$EXIT_OTHER" "needs '$command'; install it first"
    done
}

# toygres_urlencode TEXT: TEXT as one percent-encoded path segment or query value.
toygres_urlencode() {
    python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"
}

# toygres_json_field PATH < JSON: prints the value at the dotted PATH ("operation.id"); strings
# as they are, objects and arrays as JSON, nothing when absent or null.
toygres_json_field() {
    python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value.get(key) if isinstance(value, dict) else None
if isinstance(value, (dict, list)):
    print(json.dumps(value, separators=(",", ":")))
elif isinstance(value, bool):
    print("true" if value else "false")
elif value is not None:
    print(value)
' "$1"
}

# toygres_request METHOD PATH [BODY_FILE [HEADER...]]: sends one request to $TOYGRES_URL with
# the bearer token (read by curl from stdin, so it never shows in `ps`) and any extra HEADERs
# ("Name: value"; BODY_FILE may be "" for none). Sets HTTP_STATUS (empty when unreachable),
# HTTP_BODY and HTTP_RETRY_AFTER (empty when absent). Returns 0 on 2xx; otherwise sets HTTP_ERROR,
# says it on stderr (unless TOYGRES_QUIET_ERRORS=1) and returns the exit code above.
toygres_request() {
    local method="$1" path="$2" body_file="${3:-}"
    shift $(($# < 3 ? $# : 3))
    HTTP_STATUS="" HTTP_BODY="" HTTP_RETRY_AFTER="" HTTP_ERROR=""
    local headers_file body_out status config=""
    headers_file="$(mktemp)"
    body_out="$(mktemp)"
    local args=(-sS --connect-timeout 5 --max-time 35 -X "$method" -o "$body_out"
        -D "$headers_file" -w '%{http_code}' -H 'Accept: application/json' -K -)
    if [[ -n "$body_file" ]]; then
        args+=(-H 'Content-Type: application/json' --data-binary "@$body_file")
    fi
    local header
    for header in "$@"; do
        args+=(-H "$header")
    done
    if [[ -n "${TOYGRES_TOKEN:-}" ]]; then
        local token="${TOYGRES_TOKEN//\\/\\\\}"
        token="${token//\"/\\\"}"
        config="header = \"Authorization: Bearer $token\""
    fi
    if ! status="$(curl "${args[@]}" "$TOYGRES_URL$path" <<<"$config" 2>/dev/null)"; then
        rm -f "$headers_file" "$body_out"
        HTTP_ERROR="$SCRIPT_NAME: cannot reach the server at $TOYGRES_URL (is it running? set TOYGRES_URL)"
        [[ "${TOYGRES_QUIET_ERRORS:-}" == 1 ]] || echo "$HTTP_ERROR" >&2
        return "$EXIT_UNREACHABLE"
    fi
    HTTP_STATUS="$status"
    HTTP_BODY="$(cat "$body_out")"
    HTTP_RETRY_AFTER="$(awk 'tolower($1) == "retry-after:" { gsub("\r", "", $2); value = $2 } END { print value }' "$headers_file")"
    rm -f "$headers_file" "$body_out"
    if ((status >= 200 && status < 300)); then
        return 0
    fi
    local detail
    detail="$(printf '%s' "$HTTP_BODY" | python3 -c '
import json, sys
try:
    error = json.load(sys.stdin)["error"]
    print(error["code"] + ": " + error["message"])
except Exception:
    print("(no API error in the body)")
' 2>/dev/null || true)"
    HTTP_ERROR="$SCRIPT_NAME: $method $path: HTTP $status: $detail"
    [[ "${TOYGRES_QUIET_ERRORS:-}" == 1 ]] || echo "$HTTP_ERROR" >&2
    case "$status" in
    400 | 422) return "$EXIT_USAGE" ;;
    401 | 403) return "$EXIT_AUTH" ;;
    404) return "$EXIT_NOT_FOUND" ;;
    409) return "$EXIT_CONFLICT" ;;
    502 | 503 | 504) return "$EXIT_UNREACHABLE" ;;
    *) return "$EXIT_OTHER" ;;
    esac
}

toygres_need curl python3

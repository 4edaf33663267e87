#!/usr/bin/env bash
# Lists instances: GET /instances, every page. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] [--state creating|running|deleting|deleted|failed]

Lists the instances of the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080), every
page, as one JSON object on stdout: {"items": [...], "next_cursor": null}. Deleted instances are
listed only with --state deleted. Sends \$TOYGRES_TOKEN as a bearer token when set.

Exit codes: 0 listed, 2 usage or invalid state (422), 3 server unreachable, 6 any other error,
7 refused (401: missing or wrong token).
USAGE
}

state=""
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --state) state="${2:?--state needs a value}"; shift 2 ;;
    *) usage >&2; toygres_fail "$EXIT_USAGE" "unknown argument '$1'" ;;
    esac
done

pages="$(mktemp)"
trap 'rm -f "$pages"' EXIT
cursor=""
while :; do
    query=""
    [[ -z "$state" ]] || query="state=$(toygres_urlencode "$state")"
    [[ -z "$cursor" ]] || query="${query:+$query&}cursor=$(toygres_urlencode "$cursor")"
    toygres_request GET "/instances${query:+?$query}" || exit $?
    printf '%s\n' "$HTTP_BODY" >>"$pages"
    cursor="$(printf '%s' "$HTTP_BODY" | toygres_json_field next_cursor)"
    [[ -n "$cursor" ]] || break
done
# One JSON page per line in $pages: merge their items, keeping each item as the server sent it.
python3 -c '
import json, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
items = [item for line in open(sys.argv[1]) for item in json.loads(line)["items"]]
print(json.dumps({"items": items, "next_cursor": None}, separators=(",", ":")))
' "$pages"

#!/usr/bin/env bash
# Lists an instance's backups: GET /instances/{name}/backups, every page. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] NAME

Lists the backups of instance NAME (live, or the latest deleted one while its backups are kept)
on the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080), newest first, every page,
as one JSON object on stdout: {"items": [...], "next_cursor": null}. Sends \$TOYGRES_TOKEN as a
bearer token when set.

Exit codes: 0 listed, 2 usage, 3 server unreachable, 4 no such instance, 6 any other error, 7
refused (401: missing or wrong token).
USAGE
}

name=""
while (($# > 0)); do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; toygres_fail "$EXIT_USAGE" "unknown option '$1'" ;;
    *)
        [[ -z "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "one NAME only"; }
        name="$1"; shift ;;
    esac
done
[[ -n "$name" ]] || { usage >&2; toygres_fail "$EXIT_USAGE" "NAME is missing"; }

pages="$(mktemp)"
trap 'rm -f "$pages"' EXIT
cursor=""
while :; do
    query=""
    [[ -z "$cursor" ]] || query="cursor=$(toygres_urlencode "$cursor")"
    toygres_request GET "/instances/$(toygres_urlencode "$name")/backups${query:+?$query}" || exit $?
    printf '%s\n' "$HTTP_BODY" >>"$pages"
    cursor="$(printf '%s' "$HTTP_BODY" | toygres_json_field next_cursor)"
    [[ -n "$cursor" ]] || break
done
python3 -c '
import json, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
items = [item for line in open(sys.argv[1]) for item in json.loads(line)["items"]]
print(json.dumps({"items": items, "next_cursor": None}, separators=(",", ":")))
' "$pages"

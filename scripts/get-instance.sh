#!/usr/bin/env bash
# Shows an instance: GET /instances/{name}. See usage below.
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"

usage() {
    cat <<USAGE
Usage: $SCRIPT_NAME [-h] NAME

Prints instance NAME as the Toygres server at \$TOYGRES_URL (default http://127.0.0.1:8080) shows
it (JSON on stdout: state, host, port, connection_uri; never the password). Sends \$TOYGRES_TOKEN
as a bearer token when set.

Exit codes: 0 found, 2 usage, 3 server unreachable, 4 no such instance, 6 any other error,
7 refused (401: missing or wrong token).
USAGE
}

case "${1:-}" in
-h | --help) usage; exit 0 ;;
"" | -*) usage >&2; toygres_fail "$EXIT_USAGE" "NAME is missing" ;;
esac
(($# == 1)) || { usage >&2; toygres_fail "$EXIT_USAGE" "one NAME only"; }

toygres_request GET "/instances/$(toygres_urlencode "$1")" || exit $?
printf '%s\n' "$HTTP_BODY"

#!/usr/bin/env bash
# Starts an instance: POST /instances/{name}/start. See usage below (-h).
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"
# shellcheck source=lib/action.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/action.sh"

toygres_action_main start "start the stopped instance NAME again, with the same data, port and connection string" "$@"

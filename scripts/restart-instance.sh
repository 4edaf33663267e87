#!/usr/bin/env bash
# Restarts an instance: POST /instances/{name}/restart. See usage below (-h).
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"
# shellcheck source=lib/action.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/action.sh"

toygres_action_main restart "restart the server of instance NAME; it is running again once it accepts connections" "$@"

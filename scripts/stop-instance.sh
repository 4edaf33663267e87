#!/usr/bin/env bash
# Stops an instance: POST /instances/{name}/stop. See usage below (-h).
set -euo pipefail
# shellcheck source=lib/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/http.sh"
# shellcheck source=lib/action.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/action.sh"

toygres_action_main stop "stop instance NAME: its server goes down, its data, port and connection string are kept" "$@"

#!/bin/bash
# run 00000000-0000-4000-8000-000000000001 on the built-in local site
set -eo pipefail
cd /tmp/gw/00000000-0000-4000-8000-000000000001
exec /usr/bin/python3 -u -B -I /tmp/gw/00000000-0000-4000-8000-000000000001/harness/__main__.py run /tmp/gw/00000000-0000-4000-8000-000000000001 --isolation bubblewrap

"""``python -m harness run <bundle>``: the trusted runner (see harness.runner)."""

import sys

from harness.runner import main

sys.exit(main(sys.argv[1:]))

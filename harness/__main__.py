"""The trusted runner (see harness.runner): ``python -m harness run <bundle>``, or as the job script starts
it, ``python -I <bundle>/harness/__main__.py run <bundle> [--isolation ...]``; a warm pool's job (see
harness.pool): ``python -I <pooldir>/harness/__main__.py pool <pooldir> [--isolation ...]``."""

import os
import sys

if not __package__:  # run as a file under -I: import the harness this file belongs to, nothing else
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if sys.argv[1:2] == ["pool"]:
    from harness.pool import main
else:
    from harness.runner import main

sys.exit(main(sys.argv[1:]))

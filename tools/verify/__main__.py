"""``python -m tools.verify``: the report goes to stderr, a line each; the exit code is the
verdict's (``tools.verify.command``)."""

import logging
import sys

from tools.verify.command import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    sys.exit(main())

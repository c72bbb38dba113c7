"""`python -m bot …`: the same CLI as the `sahel-watch` script."""

import sys

from bot.cli import main

if __name__ == "__main__":
    sys.exit(main())

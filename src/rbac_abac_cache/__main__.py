"""Run the command line as ``python -m rbac_abac_cache``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

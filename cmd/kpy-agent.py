"""The kpy-agent binary (installed as the `kpy-agent` console script)."""

import sys

from kpy.agent.main import main

if __name__ == "__main__":
    sys.exit(main())

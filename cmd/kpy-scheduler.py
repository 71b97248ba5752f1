"""The kpy-scheduler binary (installed as the `kpy-scheduler` console script)."""

import sys

from kpy.scheduler.main import main

if __name__ == "__main__":
    sys.exit(main())

"""The kpy-controller-manager binary (installed as the `kpy-controller-manager` console script)."""

import sys

from kpy.controllers.main import main

if __name__ == "__main__":
    sys.exit(main())

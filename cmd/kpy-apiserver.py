"""The kpy-apiserver binary (installed as the `kpy-apiserver` console script)."""

import sys

from kpy.apiserver.main import main

if __name__ == "__main__":
    sys.exit(main())

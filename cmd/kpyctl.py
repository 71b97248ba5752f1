"""The kpyctl binary (installed as the `kpyctl` console script).

cmd/ holds one thin entry per binary and is deliberately not a package: a
top-level package named `cmd` would shadow Python's own `cmd` module.
"""

import sys

from kpy.cli.main import main

if __name__ == "__main__":
    sys.exit(main())

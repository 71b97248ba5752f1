"""`python -m bench._profiled_apiserver OUT [kpy-apiserver args...]`: the
real API server (kpy.apiserver.main) with cProfile on its main thread,
where every Python handler of the asyncio gRPC server runs. The profile is
written to OUT when the server stops (SIGTERM or SIGINT)."""

from __future__ import annotations

import cProfile
import sys

from kpy.apiserver.main import main as serve


def main() -> int:
    out, args = sys.argv[1], sys.argv[2:]
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return serve(args)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    sys.exit(main())

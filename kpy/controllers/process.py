"""Run `kpy-controller-manager` as a child process: for tests, benchmarks
and the local cluster launcher (see kpy._process: stopped by pid, dies with
its launcher, log kept in a file)."""

from __future__ import annotations

from kpy._process import ElectedProcess


class ControllerManagerProcess(ElectedProcess):
    component = "kpy-controller-manager"
    module = "kpy.controllers.main"

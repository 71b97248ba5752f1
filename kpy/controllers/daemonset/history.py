"""A DaemonSet's history as ControllerRevisions (Kubernetes'
pkg/controller/daemon/update.go: constructHistory, snapshot, cleanupHistory).

The logic is shared with the StatefulSet controller and lives in
`kpy.controllers.history`; this module keeps the DaemonSet controller's
names for it. A DaemonSet's pods carry the revision's hash in their
`controller-revision-hash` label.
"""

from __future__ import annotations

from kpy.controllers.history import History, revision_patch

__all__ = ["History", "revision_patch"]

"""Custom resources: structural schemas (validation, defaulting, pruning,
CEL rules) of CustomResourceDefinitions, over plain JSON objects."""

from __future__ import annotations

from kpy.api.crd.schema import FieldDoc, Structural, structural_errors

__all__ = ["FieldDoc", "Structural", "structural_errors"]

"""Backends of the contract suite that need a server: filled in by the s3 backend work."""

from __future__ import annotations

from typing import Any

BACKENDS: dict[str, Any] = {}

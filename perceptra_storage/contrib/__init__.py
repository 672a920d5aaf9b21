"""Integrations with frameworks; each submodule imports its framework, this package none."""

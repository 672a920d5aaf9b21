"""Benchmarks of perceptra-storage against the libraries users would pick instead.

``run.py`` is the entry point (``make bench``); see ``benchmarks/RESULTS.md`` for the
latest full run and how it was produced.
"""

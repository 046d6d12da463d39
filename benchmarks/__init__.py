"""Benchmarks of the provider against the emulator: ``python benchmarks/run.py`` (``make bench``)."""

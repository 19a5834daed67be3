"""Helpers for bench/detectors_vs_asterisk.py."""

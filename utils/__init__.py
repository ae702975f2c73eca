"""Helpers for main.py, split by concern; none of them reads params.py."""

"""Helpers for main.py, split by concern; none of them reads params.py, except
benchmark/ (`python -m benchmark`): an entry point like main.py, it
reads params.py to measure what `python main.py` trains with the defaults."""

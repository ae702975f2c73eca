"""The benchmark, `python -m benchmark` (README, "Performance"): an entry
point like main.py. It reads params.py to measure what `python main.py` trains with
the defaults, and calls what main.py calls (models, train, utils.outputs.logs …);
main.py itself it only runs, as a process."""

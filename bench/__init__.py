"""`make bench`: the performance harness of issue 9 (see bench/README.md and run.py)."""

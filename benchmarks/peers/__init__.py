"""Helpers of benchmarks/bench_peers.py: RecBole 1.2.1 beside seqrec on the same split.

`venv` builds RecBole's own environment, `atomic` writes seqrec's split as RecBole atomic
files, `seqrec_run` and `recbole_run` train one model each in their own process (the second
inside RecBole's environment, through `shims`) with the settings of `runner_args`, `report`
renders docs/peers.md.
"""

"""Compatibility shims that RecBole 1.2.1 needs on current numpy and torch.

Imported by `recbole_run.py` before anything of RecBole, inside RecBole's own environment
only (seqrec never imports this). Each shim restores what RecBole's code expects, and nothing
else changes:

- numpy 2.0 removed `np.float_`, `np.complex_` and `np.unicode_`, which RecBole's
  `Config.compatibility_settings` reads to put back the aliases numpy 1.24 removed
  (`np.float = np.float_`, ...; its metrics in `evaluator/metrics.py` use `np.float`): they
  are defined as the types they named (`np.float64`, `np.complex128`, `np.str_`). `np.bool8`
  (also removed in 2.0) is put back as `np.bool_`, and `np.float` / `np.int` as the
  builtins, in case anything reads them before a `Config` exists.
- torch 2.6 made `weights_only=True` the default of `torch.load`. RecBole saves its own best
  checkpoint with its `Config` object in it and reloads it for the test (`Trainer.evaluate(
  load_best_model=True)`), which the new default refuses. The shim passes
  `weights_only=False` when the caller gave none: RecBole only loads the files it wrote
  itself in this run's folder.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

for _name, _value in (("float_", np.float64), ("complex_", np.complex128),
                      ("unicode_", np.str_), ("bool8", np.bool_), ("float", float),
                      ("int", int)):
    if _name not in np.__dict__:
        setattr(np, _name, _value)

_torch_load = torch.load


@functools.wraps(_torch_load)
def _load(*args, **kwargs):
    kwargs.setdefault("weights_only", False)
    return _torch_load(*args, **kwargs)


torch.load = _load

"""Test-wide settings.

The models in the tests are tiny: one thread is as fast as two there, and it keeps the suite
from slowing down many-fold when the machine is shared (OpenMP threads spin-wait on a busy
core). Subprocesses started by tests set the same through OMP_NUM_THREADS.
"""

import os

import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

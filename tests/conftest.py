"""Test-wide settings.

One intra-op thread per test process: the suite's tensors are tiny, and on a busy 2-core machine OpenMP
barriers of 2 threads cost more than the work (a tiny SEUNet forward measured 1.1 s with 2 threads under
load against 0.1 s with 1). Behaviour does not depend on the thread count; speed is measured by
``scripts/benchmark.py``, not by tests.
"""

import torch

torch.set_num_threads(1)

"""nodeforge engine: typed nodes, graph documents, validation, content-addressed cache and a parallel executor.

Importing the engine sets ``OMP_WAIT_POLICY=PASSIVE`` before anything can import torch: busy-waiting OpenMP threads
make torch an order of magnitude slower when another process shares the cores.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

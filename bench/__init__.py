"""Benchmarks of the hot paths (`python -m bench`); figures and analysis in bench/RESULTS.md.

Benchmarks time single-core code on a shared 2-core machine: multithreaded BLAS would only fight
the other processes (the QR in the hedge re-solve spins), so it is pinned to one thread here, as
the Makefile does, before numpy is imported.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

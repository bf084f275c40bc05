"""lab: many runs as one job: nightly suites of kernels x tests x repeats, the executors that run them,
the results index, and the comparison of one night with the last.

- matrix: a suite's cells;
- executor: where runs happen (the local one has guest slots); the interface a dask one implements;
- store: the SQLite index of the run folders, which stay the source of truth;
- compare: a night against the one before, cell by cell and report by report (pure);
- nightly: one nightly, from kernels to comparison, resumable.

May import: run, machine, build, config, analysis, cache, errors, process. A run knows nothing of
this part: each run is an ordinary `labrunner run` with its own run.json.
"""

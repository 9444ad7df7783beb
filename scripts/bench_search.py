#!/usr/bin/env python
"""Search latency per mode, `kb serve` start to first answered search, index builds: now `kb bench`.

    .venv/bin/python scripts/bench_search.py [kb bench options]

is `kb bench --only inprocess,coldstart,build [options]` (see `kb bench --help`); the queries are BANKING77
training messages, each run is bounded by --duration.
"""

from __future__ import annotations

import sys

from kb.cli import main

if __name__ == "__main__":
    main(["bench", "--only", "inprocess,coldstart,build", *sys.argv[1:]])

#!/usr/bin/env python
"""Time from a publish (approve) to the new revision being found by a separate, warm Searcher: now `kb bench`.

    .venv/bin/python scripts/bench_publish.py [kb bench options]

is `kb bench --only publish [options]`: in a scratch clone of the content repository and a copy of the
bench data folder, draft, submit and approve by another user, repeated for --duration seconds (at least once).
A second server process finds a new revision the same way, when its LiveIndex sees the new manifest.
"""

from __future__ import annotations

import sys

from kb.cli import main

if __name__ == "__main__":
    main(["bench", "--only", "publish", *sys.argv[1:]])

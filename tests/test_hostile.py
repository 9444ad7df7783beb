"""The hostile-input suite: one parametrised table per class of attack or fault (issue 9).

Each section below belongs to one class; every case names what it sends and what must come back.
"""

from __future__ import annotations

# == front matter and Markdown: parsing within bounds ==================================================

# == requests: size, encoding, text validation at the edge =============================================

# == card numbers masked at every boundary =============================================================

# == authentication: redirects, sessions, rate limits ==================================================

# == index faults ======================================================================================

# == Unicode normalisation =============================================================================

"""Indexing: sections, keyword and vector indexes, fusion, builds. No Flask here."""

"""kb: a knowledge base for payment customer support."""

__version__ = "0.1.0"

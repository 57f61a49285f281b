"""pf: a polyglot compile runner (Pfyfile tasks and a build service for the web)."""

__version__ = "0.1.0"

__all__ = ["__version__"]

"""Jobs, cache and single-flight; the only caller of the sandbox for builds.

Imports toolchains, store, sandbox, config and errors.
"""

from pf.engine.cache import ActionCache, Artifact, CacheStats
from pf.engine.compile import BuildResult, compile_sources

__all__ = ["ActionCache", "Artifact", "BuildResult", "CacheStats", "compile_sources"]

"""Run one subprocess safely; knows nothing of builds. Imports config and errors only."""

from pf.sandbox.limits import DEFAULT_LIMITS, Limits
from pf.sandbox.process import Completed, LineSink, run, truncation_marker

__all__ = ["DEFAULT_LIMITS", "Completed", "Limits", "LineSink", "run", "truncation_marker"]

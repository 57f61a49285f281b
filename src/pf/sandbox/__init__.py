"""Run one subprocess safely; knows nothing of builds. Imports config and errors only."""

from pf.sandbox.limits import DEFAULT_LIMITS, Limits
from pf.sandbox.process import Completed, LineSink, run, run_attached, truncation_marker

__all__ = [
    "DEFAULT_LIMITS",
    "Completed",
    "Limits",
    "LineSink",
    "run",
    "run_attached",
    "truncation_marker",
]

"""Run one subprocess safely, confined when it runs untrusted work; knows nothing of builds.

Imports config and errors only.
"""

from pf.sandbox.limits import DEFAULT_LIMITS, Limits
from pf.sandbox.process import Completed, LineSink, run, run_attached, truncation_marker
from pf.sandbox.resident import Reply as ResidentReply
from pf.sandbox.resident import call as call_resident
from pf.sandbox.resident import shutdown as shutdown_residents
from pf.sandbox.spaces import Space, confined
from pf.sandbox.workspace import hand_over, workspace
from pf.sandbox.wrappers import (
    Command,
    Confinement,
    compile_command,
    probe,
    reap_orphans,
    sandbox_uid,
    start_up,
    task_command,
    warning,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Command",
    "Completed",
    "Confinement",
    "Limits",
    "LineSink",
    "ResidentReply",
    "Space",
    "call_resident",
    "compile_command",
    "confined",
    "hand_over",
    "probe",
    "reap_orphans",
    "run",
    "run_attached",
    "sandbox_uid",
    "shutdown_residents",
    "start_up",
    "task_command",
    "truncation_marker",
    "warning",
    "workspace",
]

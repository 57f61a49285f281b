"""One task on several remote hosts at once: a thread and an SSH session per host.

Every host runs the whole body, each output line prefixed ``[host]``. A host that
fails (cannot connect, a command exits non-zero) does not stop the others, unless
``--fail-fast`` asked for it: then the others stop before their next statement. At
the end one line per host says how it went, and the task fails with the first
failure if any host failed.
"""

from __future__ import annotations

import copy
import threading

from pf.errors import PfError
from pf.tasks.taskrun import Stop, TaskRun, sudo_options
from pf.tasks.tools import CANCELLED_CODE

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pf.dsl.model import Task
    from pf.tasks.executor import Executor
    from pf.tasks.hosts import Host


def run_on_hosts(
    executor: Executor,
    name: str,
    task: Task,
    values: dict[str, str],
    params: dict[str, str],
    hosts: list[Host],
) -> None:
    """Run ``task``'s body on every host of ``hosts`` side by side; Stop if any failed."""
    from pf.tasks.remote import Session

    reporter = copy.copy(executor.reporter)  # the same lock: lines never cut into each other
    reporter.prefix = True
    reporter.attach = False
    halt = threading.Event()
    timeout = executor.settings().ssh_connect_timeout
    results: dict[Host, Stop | None] = {}  # None: it ran to the end
    stopped: set[Host] = set()  # halted by another host's failure

    def on(host: Host) -> None:
        label = host.label
        try:
            session = Session(host, timeout, executor.cancel)
        except PfError as error:
            results[host] = Stop(None, error.exit_code, error)
            if executor.fail_fast:
                halt.set()
            return
        run = TaskRun(
            executor,
            label,
            dict(values),
            set(params),
            sudo_options(task, params),
            remote=session,
            reporter=reporter,
            halt=halt,
        )
        try:
            run.block(task.body)
            results[host] = None
        except Stop as stop:
            if halt.is_set() and stop.error is None and stop.code == CANCELLED_CODE:
                stopped.add(host)
            else:
                results[host] = stop
                if executor.fail_fast:
                    halt.set()
        finally:
            run.close()
            session.close()

    threads = [threading.Thread(target=on, args=(host,), daemon=True) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed: list[Stop] = []
    for host in hosts:
        stop = results.get(host)
        if host in stopped:
            verdict = "stopped (--fail-fast)"
        elif stop is None:
            verdict = "ok"
        elif stop.error is not None:
            verdict = "failed: " + stop.error.message.removeprefix(f"{host.label}: ")
            failed.append(stop)
        else:
            verdict = f"failed: a command exited with code {stop.code}"
            failed.append(stop)
        executor.reporter.line(name, "stderr", f"pf: {host.label}: {verdict}")
    if failed:
        raise failed[0]

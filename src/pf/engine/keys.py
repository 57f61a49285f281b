"""An action (a plan ready to run) and its key: one sha256 over everything that can change
a compile's result.

The key covers the driver id, every tool's name, version and binary digest, the argv of
every step (argv holds no temporary paths, see toolchains.base), the environment the
tools read, each input's name and content digest, and the keys of the prebuilt inputs
(which cover their own tools, steps and inputs the same way). The encoding is canonical JSON,
so the same action always gives the same key and no two fields can run together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pf.toolchains import Plan, SourceFile, ToolInfo

# Bump when the manifest layout or the meaning of a key changes.
KEY_VERSION = 3


@dataclass(frozen=True)
class Action:
    """A plan ready to run: its tools, its inputs, its prebuilt inputs and its key."""

    what: str
    plan: Plan
    tools: dict[str, ToolInfo]
    inputs: tuple[SourceFile, ...]
    prebuilt: tuple[Action, ...]
    key: str


def action_key(
    driver_id: str,
    target: str,
    tools: Iterable[ToolInfo],
    plan: Plan,
    env: Mapping[str, str],
    inputs: Iterable[SourceFile],
    prebuilt: Iterable[str] = (),
) -> str:
    document = {
        "v": KEY_VERSION,
        "driver": driver_id,
        "target": target,
        "tools": sorted((t.name, t.version, t.digest) for t in tools),
        "steps": [[step.label, *step.describe()] for step in plan.steps],
        "outputs": [[o.path, o.kind] for o in plan.outputs],
        "env": sorted(env.items()),
        "inputs": sorted((s.name, hashlib.sha256(s.content).hexdigest()) for s in inputs),
        "prebuilt": sorted(prebuilt),
    }
    encoded = json.dumps(document, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode()).hexdigest()

"""Human-readable sizes, shared by the CLI and the engine's task output; imports nothing."""

from __future__ import annotations


def human_size(size: int) -> str:
    """``127 B``, ``19.8 KiB``, ``1.2 MiB``, ``3.0 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"

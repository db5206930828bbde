"""Human-readable figures shared by the CLI and the dashboard."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(n: int) -> str:
    """Bytes in binary units: 0 B, 512 B, 1.5 KiB, 23.4 GiB (TiB is the largest unit)."""
    amount = float(n)
    for unit in _UNITS[:-1]:
        if amount < 1024:
            return f"{int(amount)} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} {_UNITS[-1]}"

"""Short human-readable text for sizes and lists, shared by describe(), the admin and commands."""

from __future__ import annotations


def format_size(size: int | None) -> str:
    """Bytes as a short human-readable string (decimal units: 1.5 MB = 1,500,000 bytes)."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def shorten(names: list[str], limit: int = 6) -> str:
    """The first names, and how many there are in all."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")

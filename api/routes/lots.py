"""Placeholder for the lot endpoints (history, trace back/forward, current holder).

They arrive with the supply-chain domain module; until then nothing here is
registered with the app, and no route pretends to answer.
"""

from __future__ import annotations

__all__: list[str] = []

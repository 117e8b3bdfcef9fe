"""Shapes every layer shares, at the bottom of the house: a JSON object, a batch of them."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
Batch = list[Json]  # what a stream yields at once: every chunk one read delivered

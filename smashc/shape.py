"""The shape of one value: channels, height, width (the batch axis left out)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """Channels, height, width of one value (batch axis left out)."""

    channels: int
    height: int
    width: int

    def __str__(self) -> str:
        return f"{self.channels}x{self.height}x{self.width}"

"""A simulated product: its roman_datamodels node, its truth catalog and how it was made."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any


@dataclass
class SimulatedImage:
    """A simulated product: the roman_datamodels node, its truth catalog, how it was made."""

    model: Any
    truth: Any
    info: dict

    def write_to(self, fileobj) -> None:
        """Write the ASDF file (roman node + romanisim extras + how it was made) to a stream."""
        import asdf

        af = asdf.AsdfFile()
        af.tree = {
            "roman": self.model,
            "romanisim": self.info.get("romanisim", {}),
            "platform_simulate": {
                k: v for k, v in self.info.items() if k not in ("romanisim", "persistence")
            },
        }
        af.write_to(fileobj)

    def truth_bytes(self) -> bytes:
        buf = io.StringIO()
        self.truth.write(buf, format="ascii.ecsv")
        return buf.getvalue().encode()

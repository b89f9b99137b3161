"""A traffic driver that only writes the split to a file: for dry runs and rehearsals without a load balancer."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from cockpit.drivers.traffic.base import SplitStatus, TrafficDriver, TrafficError


class FileTrafficDriver(TrafficDriver):
    def __init__(self, path: str | os.PathLike[str], name: str = "file"):
        self.path = Path(path)
        self.name = name

    def apply(self, green_percent: float) -> list[SplitStatus]:
        if not 0 <= green_percent <= 100:
            raise TrafficError(f"green share {green_percent} is outside 0..100")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w") as f:
            json.dump({"green_percent": round(float(green_percent), 1)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return self.live()

    def live(self) -> list[SplitStatus]:
        try:
            value = json.loads(self.path.read_text())["green_percent"]
        except FileNotFoundError:
            return [SplitStatus(self.name, 0.0, "nothing applied yet")]
        except (ValueError, KeyError, OSError) as exc:
            return [SplitStatus(self.name, None, f"unreadable: {exc}")]
        return [SplitStatus(self.name, float(value))]

"""Reading a configuration file: one error of one line, naming the file, whatever goes wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read(path: str | Path, error: type[ValueError], what: str) -> dict[str, Any]:
    """The parsed TOML at `path`, or `error` saying why not (`what`: e.g. "the directory")."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None

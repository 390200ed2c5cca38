"""Where the browser chat page shipped with the package is."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import _native

__all__ = ["bundled_web_dir"]


def bundled_web_dir() -> Optional[Path]:
    """The directory of the chat page installed with the package (served by
    ``python -m chatws``), or None if this installation has none.

    The build installs examples/web/ as chatws/web/ next to the extension
    module; an editable install keeps the pure-Python sources in the source
    tree, where the page is examples/web/ itself.
    """
    here = Path(__file__).resolve().parent
    candidates = [
        here / "web",
        Path(_native.__file__).resolve().parent / "web",
        here.parent.parent / "examples" / "web",
    ]
    for directory in candidates:
        if (directory / "index.html").is_file():
            return directory
    return None

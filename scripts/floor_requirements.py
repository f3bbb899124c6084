"""Print the lowest version each requirements file allows, as `name==version` pins, following `-r` includes.

Usage: python scripts/floor_requirements.py requirements.txt requirements-test.txt > floors.txt
torch is left out (the floor job installs the one CPU build it can), and so are the test tools that the smoke
subset does not run (SKIPPED). Every requirement must have a `>=` lower bound: one without is an error.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SKIPPED = {"torch", "playwright", "ruff"}
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?\s*(?P<spec>[^#;]*)")


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of `path` and of the files it includes with `-r`, comments removed."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            lines += requirement_lines(path.parent / line.removeprefix("-r ").strip())
        elif line:
            lines.append(line)
    return lines


def floors(paths: list[Path]) -> dict[str, str]:
    """Requirement name (lower case) -> its lower bound, over every file and include."""
    return {name: version for name, (version, _) in _bounds(paths).items()}


def _bounds(paths: list[Path]) -> dict[str, tuple[str, str]]:
    """Requirement name (lower case) -> (its lower bound, its extras such as "[mcp]", or "")."""
    found: dict[str, tuple[str, str]] = {}
    for path in paths:
        for line in requirement_lines(path):
            match = REQUIREMENT.match(line)
            if match is None:
                raise ValueError(f"{path}: cannot read {line!r}")
            name = match["name"].lower().replace("_", "-")
            bound = re.search(r">=\s*([^,\s]+)", match["spec"])
            if bound is None:
                raise ValueError(f"{path}: {line!r} has no >= lower bound")
            found[name] = (bound[1], match["extras"] or "")
    return found


def main(argv: list[str]) -> None:
    for name, (version, extras) in _bounds([Path(arg) for arg in argv]).items():
        if name not in SKIPPED:
            print(f"{name}{extras}=={version}")  # with its extras: gradio[mcp] brings the MCP server


if __name__ == "__main__":
    main(sys.argv[1:])

"""Atomic file writes: a file appears under its name complete or not at all.

Each write goes to a hidden temporary name in the same folder, then `os.replace` renames it into place (atomic
on POSIX and Windows within one file system). A process killed mid-save leaves at most a stray
`.<name>.*.partial<suffix>` file, never a truncated PNG, zip or JSON under the real name; a reader that has
the old file open keeps reading the old, complete one.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so tools that go by it still work) to write to; renamed
    onto `path` when the block ends without an error, deleted when it raises."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent
    )
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_image(image: Image.Image, path: str | Path, **options: Any) -> Path:
    """`image.save(path, **options)`, atomically; the format comes from the real name's suffix."""
    path = Path(path)
    with atomic_path(path) as temporary:
        image.save(temporary, format=Image.registered_extensions()[path.suffix.lower()], **options)
    return path


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


def write_zip(path: str | Path, members: Iterable[Path]) -> Path:
    """A zip of `members`, each stored under its own file name, written atomically."""
    path = Path(path)
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w") as bundle:
        for member in members:
            bundle.write(member, member.name)
    return path

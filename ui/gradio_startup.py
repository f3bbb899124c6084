"""Gradio's import without its type-stub regeneration: about 1.2 s of a 2.7 s `import gradio` on a 2-core VM.

Every time a component class is defined, Gradio's metaclass (`gradio/component_meta.py`,
`create_or_modify_pyi`) re-reads the class's source file, parses it and its `.pyi` with `ast` and rewrites the
stub if it differs. That is a tool for Gradio's own developers: in an installed Gradio the stubs are already
there and equal, so the work finds nothing to do, yet it is the largest single cost of the app's start-up.
Importing this module installs an import hook that replaces that function with a no-op as soon as its module
has run, before any component class is defined. It must come before anything imports gradio (app.py imports it
first); once gradio is imported it does nothing. If a Gradio release renames the function, the hook
leaves the module as it is (start-up is then just slower) and `tests/test_startup.py` fails, to say so.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

STUB_MODULE = "gradio.component_meta"
STUB_FUNCTION = "create_or_modify_pyi"


def _no_stub_regeneration(*args: object, **kwargs: object) -> None:
    """Stands in for Gradio's `create_or_modify_pyi`: the installed stubs are left as they are."""


class _StubRegenerationOff(importlib.abc.MetaPathFinder):
    """Finds `gradio.component_meta` as Python would, and swaps the stub function once the module has run."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != STUB_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            if callable(getattr(module, STUB_FUNCTION, None)):
                setattr(module, STUB_FUNCTION, _no_stub_regeneration)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def skip_stub_regeneration() -> None:
    """Turn Gradio's import-time stub regeneration off for this process (before gradio is imported)."""
    if STUB_MODULE in sys.modules or any(isinstance(f, _StubRegenerationOff) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _StubRegenerationOff())


def stub_regeneration_skipped() -> bool:
    """Whether the imported Gradio runs without its stub regeneration (False before gradio is imported)."""
    module = sys.modules.get(STUB_MODULE)
    return module is not None and getattr(module, STUB_FUNCTION, None) is _no_stub_regeneration


skip_stub_regeneration()

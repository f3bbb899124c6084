"""Input components that hand the handlers the value exactly as the client sent it.

Gradio's Slider and Number round to their precision (`steps=2.5` became 2 and ran) and check their own
bounds with their own words (`samples="abc"` failed with the generic message). The engine checks every
field's type and range (`GenerationRequest.validate`), so these pass the raw value on and let it say what is
wrong, with the same rules and messages for the page, the API and the CLIs.

The override is on the instance, not a subclass: the page still draws a plain Slider or Number, and Gradio
writes a .pyi stub beside every module that subclasses a component.
"""

from __future__ import annotations

from typing import Any, TypeVar

import gradio as gr

Component = TypeVar("Component", bound=gr.components.Component)


def raw_values(component: Component) -> Component:
    """`component`, handing its value on unchanged (Gradio calls `component.preprocess(payload)`)."""
    component.preprocess = _unchanged  # type: ignore[method-assign]
    return component


def _unchanged(payload: Any) -> Any:
    return payload

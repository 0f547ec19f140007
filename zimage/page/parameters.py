"""Components for the script endpoints whose API schema says what each parameter is.

gradio_client's `view_api()`, the JS client and the API page read a parameter's type and
description from its component's API schema, not from the function's docstring. `described`
puts our words there, and `integer` types a whole number as an integer without Gradio's rounding
(`precision=0` would silently turn a step count of 2.5 into 2 before our own check could refuse
it).

The schema is set on the component instance: subclassing a Gradio component would make Gradio's
component metaclass write a `.pyi` stub file next to this module at import time.
"""

from __future__ import annotations

from typing import Any, TypeVar

import gradio as gr

Component = TypeVar("Component", bound=gr.components.Component)


def described(component: Component, description: str, schema_type: str | None = None) -> Component:
    """`component`, its API schema carrying `description` (and, if given, the JSON type)."""
    schema: dict[str, Any] = {
        **component.api_info(),
        "description": description,
        "additional_description": description,
    }
    if schema_type is not None:
        schema["type"] = schema_type
    # Gradio reads the schema through `api_info()` when it builds the config and the API info.
    component.api_info = lambda: schema  # type: ignore[method-assign]
    return component


def integer(label: str, value: int | None, description: str) -> gr.Number:
    """A whole-number parameter: typed `integer`, checked (not rounded) by our own code."""
    return described(gr.Number(label=label, value=value), description, "integer")

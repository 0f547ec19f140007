"""A tool's parameters as Gradio sees them: hidden components whose API schema says what each
parameter is, and handler functions whose signature names them (zimage/tools describes both).

gradio_client's `view_api()`, the JS client and the API page read a parameter's type and
description from its component's API schema, its name and whether it has a default from the
handler's signature, and the endpoint's description from the handler's docstring. `described`
puts our words in the schema; an integer is typed `integer` without Gradio's rounding
(`precision=0` would silently turn a step count of 2.5 into 2 before our own check could refuse
it).

The schema is set on the component instance: subclassing a Gradio component would make Gradio's
component metaclass write a `.pyi` stub file next to this module at import time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import gradio as gr

from zimage.tools.parameters import Kind, Offer, Parameter, ToolRequest

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


def hidden_input(name: str, parameter: Parameter) -> gr.components.Component:
    """The (invisible) component that carries one parameter of a script endpoint."""
    value = None if parameter.required else parameter.default
    text = parameter.text
    if parameter.kind in (Kind.INTEGER, Kind.SEED):
        return described(gr.Number(label=name, value=value), text, "integer")
    if parameter.kind is Kind.NUMBER:
        return described(gr.Number(label=name, value=value), text)
    if parameter.kind is Kind.BOOLEAN:
        return described(gr.Checkbox(label=name, value=value), text)
    if parameter.kind is Kind.FILE:
        return described(gr.File(label=name, type="filepath"), text)
    if parameter.kind is Kind.FILES:
        return described(
            gr.Gallery(label=name, type="filepath", buttons=["download"]), text
        )
    if parameter.kind is Kind.CHOICE and parameter.choices:
        # Any value reaches our own check, which answers with our sentence.
        dropdown = gr.Dropdown(
            list(parameter.choices), value=value, label=name, allow_custom_value=True
        )
        return described(dropdown, text)
    return described(gr.Textbox(label=name, value=value), text)


def integer_output(label: str, description: str) -> gr.Number:
    """A whole-number result, typed `integer` in the API schema."""
    return described(gr.Number(label=label), description, "integer")


def endpoint_for(
    tool: type[ToolRequest], run: Callable[..., Any], offered: Mapping[str, Offer] | None = None
) -> Callable[..., Any]:
    """A handler named after the tool, taking its parameters by name (their defaults from the
    description), then Gradio's request and progress; it calls `run(request, gr_request,
    progress)` with the tool's request object. The docstring is the tool's summary, parameters
    (with the choices `offered` here) and returns, as Gradio's API page reads it."""
    parameters = tool.parameters(offered=offered)
    names = list(parameters)

    if inspect.isgeneratorfunction(run):

        def handler(*values: Any) -> Any:
            *given, request, progress = values
            yield from run(tool(**dict(zip(names, given))), request, progress)

    else:

        def handler(*values: Any) -> Any:
            *given, request, progress = values
            return run(tool(**dict(zip(names, given))), request, progress)

    signature = [
        inspect.Parameter(
            name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=inspect.Parameter.empty if described_.required else described_.default,
        )
        for name, described_ in parameters.items()
    ]
    signature += [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
        inspect.Parameter(
            "progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()
        ),
    ]
    handler.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    handler.__annotations__ = {"request": gr.Request}
    handler.__name__ = handler.__qualname__ = tool.tool_name
    handler.__doc__ = _docstring(tool, parameters)
    return handler


def _docstring(tool: type[ToolRequest], parameters: Mapping[str, Parameter]) -> str:
    lines = [tool.summary(), "", "Args:"]
    lines += [f"    {name}: {p.text}" for name, p in parameters.items()]
    return "\n".join([*lines, "", "Returns:", f"    {tool.returns}"])

"""How a tool's parameters are described: once, on the request object itself.

Each tool (text to image, edit, ...) is a frozen dataclass whose fields are its parameters, built
by keyword. A field made with `parameter(...)` carries a `Parameter`: its kind, range, default
and one description. From that one place come the script endpoints' signatures and API docs
(zimage/page/api.py), the MCP input schemas (zimage/agents), the page's limits, README's
parameter tables (tests/tools/test_reference.py) and the checks with their messages:

    @dataclass(frozen=True, kw_only=True)
    class TextToImage(ToolRequest):
        steps: int = parameter(STEPS)

A field without a `Parameter` (e.g. the page's painted mask layers) is not a parameter: no door
lists it and no caller can set it by name.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from zimage.tools.checks import (
    InputError,
    check_integer,
    check_number,
    check_optional_prompt,
    check_prompt,
)


class Kind(enum.Enum):
    """What a parameter's value is, and so how it is checked and shown."""

    TEXT = "string"
    PROMPT = "prompt"  # text the model reads: not empty, within the character limit
    # Text the model reads that may be left blank ("" then), e.g. what to keep out of the
    # picture: within the limits, but not through the prompt filter, since it names what must
    # stay out.
    OPTIONAL_PROMPT = "optional prompt"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CHOICE = "choice"  # one of `choices`
    SEED = "seed"  # checked with the request's other values (the service chooses the seed)
    FILE = "file"
    FILES = "files"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


# The default of a parameter that must be given.
REQUIRED: Any = _Required()


# What the usage log must never hold.
_NEVER_LOGGED = frozenset({Kind.PROMPT, Kind.OPTIONAL_PROMPT, Kind.FILE, Kind.FILES})


@dataclass(frozen=True)
class Parameter:
    """One parameter of a tool.

    `description` may name `{minimum}`, `{maximum}` and `{default}`: they are filled in from the
    same numbers the checks use, so the text cannot drift from them. `label` names the value in
    messages ("Steps must be from 1 to 50"). `aliases` are other names callers may use for it
    (the official Space's names). `logged`: its value goes into the usage log's settings (never
    on free text or files). `kept`: kept with the outputs for their owner's "reuse settings"
    but never logged (free text such as a negative prompt). `for_agents`: listed in the MCP tool schema. `offered`: the choices
    are known only once the settings are read; each door fills them in (`Offer`). A default of
    None means "not given" and passes the checks as None (the request resolves it, e.g. per
    model).
    """

    kind: Kind
    description: str
    label: str
    default: Any = REQUIRED
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    logged: bool = False
    kept: bool = False
    for_agents: bool = True
    check: Callable[[Any], Any] | None = None  # instead of the kind's own check
    offered: str = ""  # the key of the `Offer` that gives the choices

    def __post_init__(self) -> None:
        if self.logged and self.kind in _NEVER_LOGGED:
            raise ValueError(f"{self.label}: free text and files are never logged (kept=True)")

    def with_offer(self, offer: Offer) -> Parameter:
        """This parameter with the choices a running Space offers."""
        more = offer.more.replace("{", "{{").replace("}", "}}")
        return dataclasses.replace(
            self,
            choices=() if offer.open else offer.choices,
            description=f"{self.description} {more}".strip(),
        )

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def text(self) -> str:
        """The description with its numbers filled in."""
        return self.description.format(
            minimum=_number(self.minimum),
            maximum=_number(self.maximum),
            default=_number(self.default) if not self.required else "",
        )

    def checked(self, value: Any) -> Any:
        """The value as the engine takes it; InputError with a readable sentence if it is not
        acceptable."""
        if value is None and self.default is None:
            return None
        if self.check is not None:
            return self.check(value)
        if self.kind is Kind.PROMPT:
            return check_prompt(value, self.label.lower(), int(self.maximum))
        if self.kind is Kind.OPTIONAL_PROMPT:
            return check_optional_prompt(value, self.label.lower(), int(self.maximum))
        if self.kind is Kind.INTEGER:
            return check_integer(value, self.label, int(self.minimum), int(self.maximum))
        if self.kind is Kind.NUMBER:
            return check_number(value, self.label, float(self.minimum), float(self.maximum))
        if self.kind is Kind.BOOLEAN:
            return bool(value)
        if self.kind is Kind.CHOICE and value not in self.choices:
            raise InputError(f"{self.label} must be one of {', '.join(self.choices)}.")
        return value

    def json_schema(self) -> dict[str, Any]:
        """The parameter as JSON Schema (MCP input schemas, API pages)."""
        schema: dict[str, Any] = {"type": _JSON_TYPES[self.kind], "description": self.text}
        if self.kind in (Kind.TEXT, Kind.PROMPT, Kind.OPTIONAL_PROMPT):
            if self.maximum is not None:
                schema["maxLength"] = self.maximum
        else:
            if self.minimum is not None:
                schema["minimum"] = self.minimum
            if self.maximum is not None:
                schema["maximum"] = self.maximum
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.kind is Kind.FILES:
            schema["items"] = {"type": "string"}
        if not self.required:
            schema["default"] = self.default
            if self.default is None and self.kind is Kind.NUMBER:
                schema["type"] = ["number", "null"]
        return schema


_JSON_TYPES = {
    Kind.TEXT: "string",
    Kind.PROMPT: "string",
    Kind.OPTIONAL_PROMPT: "string",
    Kind.INTEGER: "integer",
    Kind.NUMBER: "number",
    Kind.BOOLEAN: "boolean",
    Kind.CHOICE: "string",
    Kind.SEED: "integer",
    Kind.FILE: "string",
    Kind.FILES: "array",
}


@dataclass(frozen=True)
class Offer:
    """The choices of an `offered` parameter on a running Space: `choices` (the schema's enum
    unless `open`, when other values are accepted too) and `more`, a sentence added to the
    description (what each choice is)."""

    choices: tuple[str, ...]
    more: str = ""
    open: bool = False


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return str(value)


def parameter(described: Parameter, **changes: Any) -> Any:
    """A dataclass field for a parameter (`changes` adapt a shared description to one tool)."""
    described = dataclasses.replace(described, **changes) if changes else described
    default = described.default
    if described.required:
        return dataclasses.field(metadata={"parameter": described})
    return dataclasses.field(default=default, metadata={"parameter": described})


Request = TypeVar("Request", bound="ToolRequest")


@dataclass(frozen=True, kw_only=True)
class ToolRequest:
    """A request to one tool, built by keyword; its parameters are its `parameter` fields.

    As built by a door, values are as the caller sent them; `checked()` gives the request the
    engine runs (each value checked and normalised).
    """

    # The tool's name for scripts (`/name`) and agents, and what it gives back, in words.
    tool_name: ClassVar[str]
    agent_name: ClassVar[str]
    returns: ClassVar[str]

    # Who asks, set by the service: a browser's pseudonym or a script's session, whose own
    # prompt embeddings may be reused; "" for no one in particular. Not a parameter.
    owner: str = ""

    @classmethod
    def parameters(
        cls, for_agents: bool = False, offered: Mapping[str, Offer] | None = None
    ) -> dict[str, Parameter]:
        """The tool's parameters by name, in order (those agents may set, if asked), with the
        choices `offered` filled in."""
        described = {
            field.name: field.metadata["parameter"]
            for field in dataclasses.fields(cls)
            if "parameter" in field.metadata
            and (field.metadata["parameter"].for_agents or not for_agents)
        }
        offered = offered or {}
        return {
            name: p.with_offer(offered[p.offered]) if p.offered in offered else p
            for name, p in described.items()
        }

    @classmethod
    def endpoint_values(cls, **given: Any) -> list[Any]:
        """The data of a raw HTTP call to the tool's script endpoint (`{"data": [...]}`): one
        value per parameter, in order, the ones not given at their defaults."""
        parameters = cls.parameters()
        if unknown := given.keys() - parameters.keys():
            raise TypeError(f"{cls.tool_name} has no parameter {sorted(unknown)}")
        return [given.get(name, parameter.default) for name, parameter in parameters.items()]

    @classmethod
    def summary(cls) -> str:
        """What the tool does, in a sentence or two (the class docstring)."""
        return " ".join((cls.__doc__ or "").split())

    @classmethod
    def from_agent(cls: type[Request], arguments: Mapping[str, Any]) -> Request:
        """A request from an agent's named arguments: aliases accepted, defaults for what is
        missing; unknown names and missing required ones refused with a sentence."""
        parameters = cls.parameters(for_agents=True)
        by_alias = {alias: name for name, p in parameters.items() for alias in p.aliases}
        values: dict[str, Any] = {}
        unknown = []
        for given, value in arguments.items():
            name = given if given in parameters else by_alias.get(given)
            if name is None:
                unknown.append(given)
            else:
                values[name] = value
        if unknown:
            listed = ", ".join(sorted(map(repr, unknown)))
            raise InputError(
                f"Unknown argument{'s' if len(unknown) > 1 else ''} {listed}: "
                f"{cls.tool_name} takes {', '.join(parameters)}."
            )
        missing = [name for name, p in parameters.items() if p.required and name not in values]
        if missing:
            raise InputError(f"{cls.tool_name} needs {', '.join(missing)}.")
        return cls(**values)

    def checked(self: Request) -> Request:
        """This request with every parameter checked; InputError names the first bad one."""
        return dataclasses.replace(
            self,
            **{
                name: described.checked(getattr(self, name))
                for name, described in self.parameters().items()
            },
        )

    def logged_settings(self) -> dict[str, Any]:
        """The settings the usage log and the history keep (parameters marked `logged`)."""
        logged = [name for name, described in self.parameters().items() if described.logged]
        return {name: getattr(self, name) for name in logged}

    def kept_settings(self) -> dict[str, Any]:
        """The settings kept with the outputs for their owner's "reuse settings": the logged
        ones and those marked `kept` (free text, never logged)."""
        kept = [name for name, p in self.parameters().items() if p.logged or p.kept]
        return {name: getattr(self, name) for name in kept}

    @classmethod
    def input_schema(cls, offered: Mapping[str, Offer] | None = None) -> dict[str, Any]:
        """The tool's input as JSON Schema, as agents see it."""
        parameters = cls.parameters(for_agents=True, offered=offered)
        return {
            "type": "object",
            "properties": {name: p.json_schema() for name, p in parameters.items()},
            "required": [name for name, p in parameters.items() if p.required],
            "additionalProperties": False,
        }

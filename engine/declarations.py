"""What an input means, declared once on its field: a model of some kind, a seed, a file to read, a folder to write,
a saved graph's name, multiline text.

    class Inputs(NodeInputs):
        model: str = ModelInput("sd-turbo", kind=DIFFUSION, description="...")
        seed: int = SeedInput()
        folder: str = FolderInput("", description="Where to write")

A declaration is a pydantic ``Field`` that carries an ``InputRole`` in its metadata. The engine reads the roles and
derives the rest: which inputs the path policy checks and how (``engine.files``), which models the scheduler
places a node by, the validation of model names against the families of their ``ModelKind`` (one compile pass for
every node: no family check in ``check`` hooks), the identity of a loaded model, random seeds, the schema keys
the editor builds its widgets from, and whether a node needs a device for the literals it was given (a node
whose model is a remote one holds no device slot).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from nodeforge.engine.files import FileUse

RANDOM_SEEDS = ("random", -1)
"""Seed values that ask for a seed drawn per run (recorded in the run record)."""


@dataclass(frozen=True)
class ModelKind:
    """What a model input loads, declared next to its loader: ``name`` is what is built from the files (one loaded
    copy per kind and files: ``model_source.model_key``), ``families`` the model families the loader runs (empty:
    any), ``remote`` whether a remote name (``openai:<model>``, resolved by the catalogue) may stand in for a
    local model, ``extra_names`` names the node handles without the catalogue (``espeak``)."""

    name: str
    families: tuple[str, ...] = ()
    remote: bool = False
    extra_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputRole:
    """The meaning of one input beyond its type; ``widget`` is the editor control it gets."""

    widget: ClassVar[str]

    @property
    def file_use(self) -> FileUse | None:
        """How the path policy treats the input's value: a file to read, a folder to write, a model name."""
        return None

    def schema_keys(self) -> dict[str, Any]:
        """The keys this role adds to the input's JSON Schema in the catalogue (``GET /api/nodes``)."""
        keys: dict[str, Any] = {"x-nodeforge-widget": self.widget}
        if self.file_use is not None:
            keys["x-nodeforge-file"] = self.file_use
        return keys


@dataclass(frozen=True)
class ModelRole(InputRole):
    """A model name, or a list of them (``loras``: objects with a ``model`` entry; ``controls``: the models the
    linked controls name), loaded as ``kind``."""

    kind: ModelKind
    widget_name: str = "model"
    widget: ClassVar[str] = "model"

    @property
    def file_use(self) -> FileUse | None:
        return "model"

    def schema_keys(self) -> dict[str, Any]:
        return {"x-nodeforge-widget": self.widget_name, "x-nodeforge-file": "model",
                "x-nodeforge-models": list(self.kind.families), "x-nodeforge-model-kind": self.kind.name,
                "x-nodeforge-remote": self.kind.remote, "x-nodeforge-model-names": list(self.kind.extra_names)}


@dataclass(frozen=True)
class SeedRole(InputRole):
    """A noise seed: ``-1`` or ``"random"`` draws one per run, recorded in the run and the pictures it makes."""

    widget: ClassVar[str] = "seed"


@dataclass(frozen=True)
class FileRole(InputRole):
    """A file the node reads (``read``) or a folder it writes into (``write``), opened through ``ctx.files``."""

    use: Literal["read", "write"] = "read"
    widget: ClassVar[str] = "file"

    @property
    def file_use(self) -> FileUse | None:
        return self.use

    def schema_keys(self) -> dict[str, Any]:
        return {"x-nodeforge-widget": "file" if self.use == "read" else "folder", "x-nodeforge-file": self.use}


@dataclass(frozen=True)
class SavedGraphRole(InputRole):
    """The name of a saved graph (``graph.call``): the editor offers the library's graphs."""

    widget: ClassVar[str] = "graph"


@dataclass(frozen=True)
class MultilineRole(InputRole):
    """Text written over several lines (a prompt, a template)."""

    widget: ClassVar[str] = "multiline"


def declared(role: InputRole, default: Any, description: str, constraints: Mapping[str, Any]) -> Any:
    """A pydantic field carrying ``role`` (typed ``Any`` so it stands as the default of any annotation)."""
    info: FieldInfo = Field(default, description=description, **constraints)
    info.metadata.append(role)
    return info


def ModelInput(default: Any = PydanticUndefined, *, kind: ModelKind, description: str = "",  # noqa: N802
               widget: str = "model", **constraints: Any) -> Any:
    """A model input of ``kind``; ``widget`` names the editor control for list inputs (``loras``)."""
    if default == [] or default == ():
        constraints.setdefault("default_factory", list)
        default = PydanticUndefined
    return declared(ModelRole(kind, widget), default, description, constraints)


def SeedInput(default: int = 0, *, description: str = "Noise seed; -1 draws one (recorded in the run)",  # noqa: N802
              **constraints: Any) -> Any:
    """A noise seed (an int; -1 or ``"random"`` draws one per run)."""
    return declared(SeedRole(), default, description, constraints)


def FileInput(default: Any = PydanticUndefined, *, description: str = "", **constraints: Any) -> Any:  # noqa: N802
    """A file the node reads (a path or an uploaded artifact id)."""
    return declared(FileRole("read"), default, description, constraints)


def FolderInput(default: Any = PydanticUndefined, *, description: str = "", **constraints: Any) -> Any:  # noqa: N802
    """A folder the node writes into."""
    return declared(FileRole("write"), default, description, constraints)


def SavedGraphInput(default: Any = PydanticUndefined, *, description: str = "",  # noqa: N802
                    **constraints: Any) -> Any:
    """The name of a saved graph."""
    return declared(SavedGraphRole(), default, description, constraints)


def TextInput(default: Any = PydanticUndefined, *, description: str = "", **constraints: Any) -> Any:  # noqa: N802
    """Multiline text (a prompt, a template)."""
    return declared(MultilineRole(), default, description, constraints)


def role_of(info: FieldInfo) -> InputRole | None:
    """The role a field declares, if any."""
    return next((item for item in info.metadata if isinstance(item, InputRole)), None)

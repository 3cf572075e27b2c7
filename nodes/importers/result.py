"""What an import gives back: the nodeforge document, the warnings about what only maps approximately, and every
node that does not map at all (by id and class), or the error that stops it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nodeforge.engine.errors import EngineError


@dataclass(frozen=True)
class Unmapped:
    """A workflow node with no nodeforge equivalent (or that depends on one), and why."""

    id: str
    class_type: str
    reason: str
    input: str | None = None  # the input at fault, when one is
    title: str = ""  # the title the workflow's editor shows, when it differs from the class

    def __str__(self) -> str:
        title = f'"{self.title}" ' if self._titled else ""
        return f"node {self.id} {title}({self.class_type}): {self.reason}"

    @property
    def _titled(self) -> bool:
        return bool(self.title) and self.title != self.class_type

    def to_dict(self) -> dict[str, str]:
        found = {"id": self.id, "class_type": self.class_type, "reason": self.reason}
        return {**found, "title": self.title} if self._titled else found


@dataclass
class ImportResult:
    """``document`` is a nodeforge graph document (JSON); ``unmapped`` is empty unless the import was partial."""

    document: dict[str, Any]
    source: str
    warnings: list[str] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"document": self.document, "source": self.source, "warnings": self.warnings,
                "unmapped": [item.to_dict() for item in self.unmapped]}


class ImportFailed(EngineError):
    """The file cannot be imported: it is not a workflow, it is malformed, or nodes in it do not map (``unmapped``
    lists every one of them)."""

    def __init__(self, message: str, unmapped: list[Unmapped] | None = None) -> None:
        self.unmapped = list(unmapped or [])
        lines = "".join(f"\n  {item}" for item in self.unmapped)
        super().__init__(message + lines)
        self.summary = message

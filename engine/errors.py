"""The engine's exception tree. Every message is user-facing text: it names the node, the input and the reason."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TypeGuard


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


def first_line(exc: BaseException, limit: int = 400) -> str:
    """A library exception's reason for a user-facing message: its first line (tracebacks and dumps of tensors
    stay out), cut at ``limit`` characters; its type name when it says nothing."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


class NodeDefinitionError(EngineError):
    """A node class is declared wrongly (found when the registry loads it)."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a graph document: where it is and why it is wrong."""

    node: str | None
    input: str | None
    code: str
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return {"node": self.node, "input": self.input, "code": self.code, "message": self.message}

    def __str__(self) -> str:
        where = ".".join(part for part in (self.node, self.input) if part) or "graph"
        return f"{where}: {self.message} [{self.code}]"


class GraphValidationError(EngineError):
    """A graph has one or more issues; all of them are carried, not just the first."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"the graph has {len(issues)} issue(s):\n{lines}")


class GraphInputError(EngineError):
    """A value given for a graph input (``--set``, API ``inputs``) does not fit its declared type."""


class NodeError(EngineError):
    """Raised by node code with a user-facing reason; the engine adds the node id and type."""

    def __init__(self, message: str, *, input: str | None = None) -> None:
        self.input = input
        super().__init__(message)


class NodeExecutionError(EngineError):
    """A node failed while running; wraps the cause with the node's id and type."""

    def __init__(self, node_id: str, node_type: str, cause: BaseException) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.cause = cause
        where = f"node '{node_id}' ({node_type})"
        field = getattr(cause, "input", None)
        if field:
            where += f", input '{field}'"
        reason = str(cause) or type(cause).__name__
        if not isinstance(cause, EngineError):
            reason = f"{type(cause).__name__}: {reason}"
        super().__init__(f"{where}: {reason}")


class UsageError(Exception):
    """A bad command line: reported as one line with exit code 2."""


class CodecError(ValueError):
    """A value the cache cannot encode or decode (a type it does not know, a torn entry)."""


class ModelBudgetError(EngineError):
    """A model cannot fit in a device's budget even after evicting every unpinned model."""


class ModelResolveError(EngineError):
    """A model name that resolves to nothing usable; the message says what was tried and what would work."""


class RemoteNodeError(EngineError):
    """A node's exception that could not travel back from a Ray worker as itself (not picklable); keeps its type
    name, message and the input it named."""

    def __init__(self, text: str, input: str | None = None) -> None:
        self.input = input
        super().__init__(text)

    def __reduce__(self) -> tuple[type[RemoteNodeError], tuple[str, str | None]]:
        return RemoteNodeError, (str(self), self.input)


class DeviceError(EngineError):
    """A device failed under a node (out of memory, driver error): the scheduler may retry on another device."""


class StorageError(EngineError):
    """The disk refused a write the engine makes (an output file, a cache entry): full, over quota, read-only or
    failing. A fault of the machine, not of the graph: the message says which, and what was being written."""

    REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the disk is read-only", errno.EIO: "the disk failed (an I/O error)"}

    @classmethod
    def of(cls, exc: OSError) -> StorageError:
        reason = cls.REASONS.get(exc.errno or 0) or exc.strerror or str(exc) or type(exc).__name__
        where = f" writing {exc.filename}" if exc.filename else ""
        return cls(f"{reason}{where}")

    @classmethod
    def is_disk(cls, exc: BaseException) -> TypeGuard[OSError]:
        """Whether ``exc`` is the disk refusing a write (as opposed to a missing file or a bug)."""
        return isinstance(exc, OSError) and exc.errno in cls.REASONS


class RunCancelled(EngineError):
    """The run was cancelled; raised at progress points so a node stops promptly."""


class GraphRecursionError(EngineError):
    """``graph.call`` reaches a graph it is already inside, so the call could never finish. ``input`` is the
    calling node's input that names the graph, when known."""

    def __init__(self, message: str, *, input: str | None = None) -> None:
        self.input = input
        super().__init__(message)


class GraphNotFoundError(EngineError):
    """A saved graph name did not resolve in any library folder."""

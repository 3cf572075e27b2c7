"""Which models the OpenAI-compatible chat endpoint can answer with, behind a small protocol.

``LocalLLMBackend`` knows the models the ``llm.generate`` node declares for its ``model`` input (without the node
there are none): a model name is resolved by the model registry (``tiny/llm``, shipped, aliases, Hub ids, files inside
the allowed folders). It only says what can answer: the answer itself is an ``llm.generate`` run of the server
(``server/routes/openai.py``), so a request is refused here, before a stream starts, rather than by a run that
fails after a 200 went out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from nodeforge.engine.errors import NodeError
from nodeforge.server.model_names import known_models

if TYPE_CHECKING:
    from nodeforge.engine.declarations import ModelKind
    from nodeforge.server.runtime import Runtime


class ChatUnavailable(LookupError):
    """No model of that name to answer with."""


class ChatBackend(Protocol):
    def models(self) -> list[str]:
        """Model names this backend can answer with now."""
        ...

    def unavailable(self, model: str) -> str | None:
        """Why ``model`` cannot answer now; None when it can."""
        ...

    def check(self, model: str) -> None:
        """Raise ChatUnavailable when the model certainly cannot answer (before a stream starts)."""
        ...


CHAT_NODE = "llm.generate"
"""The node every chat completion runs as; its ``model`` declaration says which models answer."""


class LocalLLMBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.data_dir = runtime.settings.data_dir
        self.files = runtime.files

    def _kind(self) -> ModelKind | None:
        spec = self.runtime.registry.find(CHAT_NODE)
        return spec.model_kinds.get("model") if spec is not None else None

    def models(self) -> list[str]:
        """The registry's LLM names that load from this machine alone (tiny, shipped and installed, an alias of a
        local path or of a Hub snapshot in the local cache): a listed model answers, offline too."""
        kind = self._kind()
        if kind is None:
            return []
        source = self.runtime.registry.model_source
        entries, _ = known_models(source, self.data_dir, kind.families)
        return [entry["name"] for entry in entries if source.local_problem(entry["name"], self.data_dir) is None]

    def unavailable(self, model: str) -> str | None:
        try:
            resolver, name = self._support(model)
        except ChatUnavailable as exc:
            return str(exc)
        problem = resolver.local_problem(name, self.data_dir)
        return problem and f"model '{model[:200]}' cannot answer now: {problem}"

    def _support(self, model: str) -> tuple[Any, str]:
        """The resolver and the model name checked against the path policy (a local path made absolute inside the
        allowed folders); ChatUnavailable when the model cannot be served."""
        kind = self._kind()
        resolver = self.runtime.registry.model_source
        if kind is None or not resolver.installed:
            raise ChatUnavailable(f"no local LLM support is installed (the {CHAT_NODE} node)")
        if resolver.remote_name(model) is not None:
            raise ChatUnavailable(f"'{model}' names a remote server; this endpoint serves local models")
        try:
            name = self.files.model(model, input="model")
            problem = resolver.problem(name, self.data_dir, families=kind.families)
        except NodeError as exc:
            raise ChatUnavailable(f"model {exc}") from None
        except OSError as exc:  # a name the file system cannot look up (too long, bad characters)
            raise ChatUnavailable(f"model '{model[:200]}' is not a usable name: "
                                  f"{exc.strerror or type(exc).__name__}") from None
        if problem:
            raise ChatUnavailable(f"model '{model[:200]}': {problem}")
        return resolver, name

    def check(self, model: str) -> None:
        """The request's model must resolve; offline, it must also be on this machine (so a stream never starts
        for a model that then fails to load)."""
        resolver, name = self._support(model)
        problem = resolver.offline_problem(name, self.data_dir)
        if problem:
            raise ChatUnavailable(f"model '{model[:200]}' cannot answer offline (HF_HUB_OFFLINE): {problem}")

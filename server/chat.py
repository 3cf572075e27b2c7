"""Chat completions for the OpenAI-compatible endpoint, behind a small protocol.

``LocalLLMBackend`` answers with the local causal LMs of ``nodes/llm.py`` (imported lazily: without the package
there are no models): the model name is resolved by the model registry (``tiny/llm``, shipped, aliases, Hub ids,
files inside the allowed folders) and loaded through the server's model manager under the same key as the
``llm.generate`` node uses, so a graph and the endpoint share one resident copy. Whole conversations go to the
model's chat template; each new piece of text goes through a callback, which is also where a cancelled request
stops.
"""

from __future__ import annotations

import importlib
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nodeforge.engine.errors import EngineError, NodeError, RunCancelled
from nodeforge.engine.model_source import model_key
from nodeforge.server.models import known_models

if TYPE_CHECKING:
    from nodeforge.server.runtime import Runtime


class ChatUnavailable(LookupError):
    """No model of that name to answer with."""


class ChatFailed(RuntimeError):
    """The request reached the model and failed; the message says why."""


@dataclass(frozen=True)
class ChatCall:
    model: str
    messages: list[dict[str, str]]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChatAnswer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class ChatBackend(Protocol):
    def models(self) -> list[str]:
        """Model names this backend can answer with now."""
        ...

    def unavailable(self, model: str) -> str | None:
        """Why ``model`` cannot answer now; None when it can."""
        ...

    def check(self, call: ChatCall) -> None:
        """Raise ChatUnavailable when the model certainly cannot answer (before a stream starts)."""
        ...

    def complete(self, call: ChatCall, on_text: Callable[[str], object] | None,
                 cancel: threading.Event) -> ChatAnswer:
        """Answer a conversation; ``on_text`` receives each new piece of the text (joined, they are the text)."""
        ...


def _llm_module() -> Any | None:
    try:
        return importlib.import_module("nodeforge.nodes.llm")
    except ImportError:
        return None


class LocalLLMBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.data_dir = runtime.settings.data_dir
        self.files = runtime.files

    def models(self) -> list[str]:
        """The registry's LLM names that load from this machine alone (tiny, shipped and installed, an alias of a
        local path or of a Hub snapshot in the local cache): a listed model answers, offline too."""
        llm = _llm_module()
        if llm is None:
            return []
        source = self.runtime.registry.model_source
        entries, _ = known_models(source, self.data_dir, llm.FAMILIES)
        return [entry["name"] for entry in entries if source.local_problem(entry["name"], self.data_dir) is None]

    def unavailable(self, model: str) -> str | None:
        try:
            _, resolver, name = self._support(ChatCall(model=model, messages=[]))
        except ChatUnavailable as exc:
            return str(exc)
        problem = resolver.local_problem(name, self.data_dir)
        return problem and f"model '{model[:200]}' cannot answer now: {problem}"

    def _support(self, call: ChatCall) -> tuple[Any, Any, str]:
        """The LLM module, the resolver and the model name checked against the path policy (a local path made
        absolute inside the allowed folders); ChatUnavailable when the model cannot be served."""
        llm = _llm_module()
        resolver = self.runtime.registry.model_source
        if llm is None or not resolver.installed:
            raise ChatUnavailable("no local LLM support is installed (nodes.llm)")
        if call.model.startswith(llm.OPENAI_PREFIX):
            raise ChatUnavailable(f"'{call.model}' names a remote server; this endpoint serves local models")
        try:
            model = self.files.model(call.model, input="model")
            problem = resolver.problem(model, self.data_dir, families=llm.FAMILIES)
        except NodeError as exc:
            raise ChatUnavailable(f"model {exc}") from None
        except OSError as exc:  # a name the file system cannot look up (too long, bad characters)
            raise ChatUnavailable(f"model '{call.model[:200]}' is not a usable name: "
                                  f"{exc.strerror or type(exc).__name__}") from None
        if problem:
            raise ChatUnavailable(f"model '{call.model[:200]}': {problem}")
        return llm, resolver, model

    def check(self, call: ChatCall) -> None:
        """The request's model must resolve; offline, it must also be on this machine (so a stream never starts
        for a model that then fails to load)."""
        _, resolver, model = self._support(call)
        problem = resolver.offline_problem(model, self.data_dir)
        if problem:
            raise ChatUnavailable(f"model '{call.model[:200]}' cannot answer offline (HF_HUB_OFFLINE): {problem}")

    def complete(self, call: ChatCall, on_text: Callable[[str], object] | None,
                 cancel: threading.Event) -> ChatAnswer:
        llm, resolver, model = self._support(call)
        try:
            resolved = resolver.resolve(model, self.data_dir, families=llm.FAMILIES, relative_paths=False)
        except EngineError as exc:
            raise ChatUnavailable(str(exc)) from None
        device, models = self.runtime.model_home()
        key = model_key("llm", resolved)
        try:
            lm = models.get(device, key,
                            lambda target: llm.load_causal_lm(call.model, resolved.path, target, self.data_dir))
        except EngineError as exc:
            raise ChatFailed(str(exc)) from None
        try:
            options = llm.GenerateOptions(
                max_new_tokens=call.max_tokens or lm.context,
                temperature=1.0 if call.temperature is None else call.temperature,
                top_p=1.0 if call.top_p is None else call.top_p,
                seed=call.seed if call.seed is not None else random.SystemRandom().randrange(2**31),
                stop=tuple(call.stop))

            def grown(delta: str, tokens: int) -> None:
                if cancel.is_set():
                    raise RunCancelled("the client went away")
                if on_text is not None and delta:
                    on_text(delta)

            result = llm.generate(lm, _messages(call.messages), options, grown)
        except RunCancelled:
            raise ChatFailed("cancelled") from None
        except EngineError as exc:
            raise ChatFailed(str(exc)) from None
        finally:
            models.release(device, key)
        return ChatAnswer(result.text, result.finish_reason, result.prompt_tokens, result.completion_tokens)


def _messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """OpenAI's ``developer`` role is a system message to a chat template."""
    return [{"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]}
            for m in messages]

"""The streaming half of local text generation: seeded sampling that leaves torch's global RNG alone, and the
streamer that turns new tokens into visible text deltas and watches for stop strings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

TextCallback = Callable[[str, int], None]


def sampling_processors(temperature: float, top_p: float, seed: int, device: Any) -> list[Any]:
    """Temperature and top-p warpers, then a seeded Gumbel draw; none for greedy (temperature 0)."""
    if temperature <= 0:
        return []
    import torch
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    generator = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(seed)
    warpers: list[Any] = [TemperatureLogitsWarper(temperature)]
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return [*warpers, GumbelSample(generator)]


class GumbelSample:
    """Turns greedy decoding into sampling: argmax(logits + Gumbel noise) draws from softmax(logits)."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        uniform = torch.rand(scores.shape, generator=self.generator, device=self.generator.device,
                             dtype=torch.float32).to(scores.device)
        gumbel = -torch.log(-torch.log(uniform.clamp_(1e-10, 1.0 - 1e-7)))
        return scores.float() + gumbel


class TextTracker:
    """Streamer and stop-string watcher in one: decodes the new tokens as they come, reports what they add to the
    visible text (holding back an unfinished UTF-8 character or the start of a stop string) and stops at a stop
    string.

    Decoding is incremental (two decodes of a few tokens per step, as serving stacks do): the text of the tokens
    since the last settled point, minus the text of the settled tokens it starts with, is what is new. At the end
    the whole answer is decoded once, so the result never depends on the shortcut; the rest of it is the last
    delta (should a tokenizer's whole decode not extend what was streamed, the result alone carries it)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], on_text: TextCallback | None) -> None:
        self.tokenizer = tokenizer
        self.stops = [stop for stop in stops if stop]
        self.on_text = on_text
        self.ids: list[int] = []
        self.text = ""
        self.shown = ""
        self.stopped = False
        self._prompt_seen = False
        self._prefix = 0  # tokens before this are settled text
        self._read = 0  # tokens before this are in self.text
        self._fast = backend_decoder(tokenizer)

    def put(self, value: Any) -> None:
        if not self._prompt_seen or self.stopped:  # the prompt comes first; after a stop string, nothing counts
            self._prompt_seen = True
            return
        self.ids.extend(int(token) for token in value.reshape(-1).tolist())
        before = len(self.text)
        settled = self._fast(self.ids[self._prefix:self._read]) if self._read > self._prefix else ""
        fresh = self._fast(self.ids[self._prefix:])
        if len(fresh) > len(settled) and not fresh.endswith("\ufffd"):
            self.text += fresh[len(settled):]
            self._prefix, self._read = self._read, len(self.ids)
        self._cut_at_stop(before)
        self._show(self.text if self.stopped else self._held_back(self.text), always=True)

    def end(self) -> None:
        if not self.stopped:
            self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
            self._cut_at_stop(0)
        self._show(self.text, always=False)

    def _show(self, visible: str, *, always: bool) -> None:
        """Report what ``visible`` adds to the text shown so far (every token reports, for its progress step)."""
        delta = visible[len(self.shown):] if visible.startswith(self.shown) else ""
        self.shown += delta
        if self.on_text is not None and (delta or always):
            self.on_text(delta, len(self.ids))

    def criterion(self) -> Any:
        import torch
        from transformers import StoppingCriteria

        tracker = self

        class StopOnText(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), tracker.stopped, dtype=torch.bool, device=input_ids.device)

        return StopOnText()

    def _cut_at_stop(self, searched: int) -> None:
        """End the text at the first stop string, looking only where a new one can be (after ``searched``)."""
        if not self.stops:
            return
        start = max(0, searched - max(len(stop) for stop in self.stops))
        found = [index for index in (self.text.find(stop, start) for stop in self.stops) if index >= 0]
        if found:
            self.text, self.stopped = self.text[:min(found)], True

    def _held_back(self, text: str) -> str:
        keep = len(text)
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:size]):
                    keep = min(keep, len(text) - size)
                    break
        return text[:keep]


def backend_decoder(tokenizer: Any) -> Callable[[list[int]], str]:
    """The Rust tokenizer's own decode when it gives the same text as ``tokenizer.decode`` (no clean-up pass):
    a few microseconds per streamed token instead of tens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return lambda ids: backend.decode(ids, skip_special_tokens=True)
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=True)

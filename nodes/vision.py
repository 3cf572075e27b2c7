"""``image.ask``: vision question answering with transformers' image-text-to-text models (SmolVLM / Idefics3,
Qwen2-VL / Qwen2.5-VL, LLaVA, Florence-2).

The question goes through the processor's chat template as one user turn whose content is an image placeholder
per picture of the ``image`` batch followed by the question's text; the processor expands each placeholder into
the model's image tokens. A processor without a chat template (Florence-2) gets the question as its plain prompt
and one picture. Decoding reuses ``llm.generate``'s pieces: greedy at temperature 0, else sampling from a private
seeded generator, each new token streamed as a progress ``delta``.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, ModelKind, SeedInput, TextInput
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ModelSource, ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Image
from nodeforge.nodes.family_helpers import literal, on_device, quiet_transformers, torch_device
from nodeforge.nodes.llm import GenerateOptions, Generation, WarningCallback, context_length, usage
from nodeforge.nodes.llm_stream import TextCallback, TextTracker, sampling_processors

FAMILIES = ("vlm",)
VISION_LM = ModelKind("vlm", FAMILIES)
"""A transformers image-text-to-text model (``load_vision_lm``)."""
ONE_PICTURE_TYPES = frozenset({"florence2"})  # architectures that read one picture per prompt


@dataclass(frozen=True)
class VisionLM:
    """A loaded vision-language model: model, processor, the tokens its text model attends over, and whether it
    takes several pictures in one question."""

    name: str
    model: Any
    processor: Any
    context: int
    several_pictures: bool

    def to(self, device: str) -> VisionLM:
        """Moved to another device (the model manager offloads models with this)."""
        return VisionLM(self.name, self.model.to(torch_device(device)), self.processor, self.context,
                        self.several_pictures)

    def parameters(self) -> Any:
        return self.model.parameters()

    def buffers(self) -> Any:
        return self.model.buffers()


def load_vision_lm(resolved: ResolvedModel, device: str) -> VisionLM:
    """A transformers image-text-to-text model and its processor from a local folder, on ``device`` (in the
    checkpoint's precision on GPUs, float32 on the CPU)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    quiet_transformers()
    target = torch_device(device)
    part = "processor"
    try:
        processor = AutoProcessor.from_pretrained(str(resolved.path))
        part = "model"
        dtype: Any = "auto" if target != "cpu" else torch.float32
        model = on_device(AutoModelForImageTextToText.from_pretrained(str(resolved.path), dtype=dtype), target)
    except Exception as exc:  # noqa: BLE001 - wrong kind of folder, missing files: one message naming the model
        hint = ""
        if part == "processor" and importlib.util.find_spec("torchvision") is None:
            hint = " (transformers builds some processors, Qwen2-VL's among them, only with torchvision installed)"
        raise NodeError(f"model '{resolved.name}' ({resolved.path}) could not be loaded as a vision-language model: "
                        f"its {part} failed with {type(exc).__name__}: {first_line(exc, 300)}{hint}; accepted: "
                        "image-text-to-text models (smolvlm-256m, qwen2.5-vl-3b, florence-2-base, tiny/vlm, or "
                        "such a folder)", input="model") from None
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or not hasattr(processor, "image_processor"):
        raise NodeError(f"model '{resolved.name}' ({resolved.path}) has no processor for pictures and text",
                        input="model")
    several = bool(getattr(processor, "chat_template", None)) and model.config.model_type not in ONE_PICTURE_TYPES
    return VisionLM(resolved.name, model, processor, context_length(model, tokenizer), several)


def open_vision_lm(name: str, ctx: NodeContext) -> VisionLM:
    """The vision-language model ``name`` resolved (tiny, path, alias, Hub id) and resident on the node's device."""
    return ctx.models.load(name, load_vision_lm)


def render_question(vlm: VisionLM, pictures: int, question: str, system: str = "") -> str:
    """The prompt text: the chat template over a system turn (when given) and a user turn of one image placeholder
    per picture then the question; without a chat template, the question itself."""
    if not vlm.several_pictures:
        if pictures != 1:
            raise NodeError(f"model '{vlm.name}' ({vlm.model.config.model_type}) answers about one picture at a "
                            f"time; the image input holds {pictures}", input="image")
        return question
    content: list[dict[str, str]] = [{"type": "image"} for _ in range(pictures)]
    messages: list[dict[str, Any]] = [{"role": "user", "content": [*content, {"type": "text", "text": question}]}]
    if system:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
    return str(vlm.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))


def encode(vlm: VisionLM, pictures: Sequence[Any], question: str, system: str = "") -> Any:
    """The model inputs (token ids with the expanded image tokens, pixel values...) for PIL ``pictures``."""
    prompt = render_question(vlm, len(pictures), question, system)
    try:
        encoded = vlm.processor(text=[prompt], images=list(pictures), return_tensors="pt")
    except (ValueError, TypeError) as exc:
        raise NodeError(f"model '{vlm.name}' cannot read these pictures: {first_line(exc)}", input="image") from None
    return encoded.to(vlm.model.device, dtype=vlm.model.dtype)


def ask(vlm: VisionLM, pictures: Sequence[Any], question: str, options: GenerateOptions, system: str = "",
        on_text: TextCallback | None = None, on_warning: WarningCallback | None = None) -> Generation:
    """Answer ``question`` about ``pictures``; ``on_text(delta, tokens_so_far)`` hears every new token (and may
    raise to stop), ``on_warning`` a token budget cut to fit the context. The prompt's token count includes the
    image tokens."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    encoded = encode(vlm, pictures, question, system)
    prompt_tokens = int(encoded["input_ids"].shape[1])
    room = vlm.context - prompt_tokens
    if room < 1:
        raise NodeError(f"the question and its {len(pictures)} picture(s) take {prompt_tokens} tokens; {vlm.name} "
                        f"holds {vlm.context} tokens of context", input="question")
    max_new = min(options.max_new_tokens, room)
    if max_new < options.max_new_tokens and on_warning is not None:
        on_warning(f"max_new_tokens cut from {options.max_new_tokens} to {room}: the question and its pictures "
                   f"take {prompt_tokens} of the {vlm.context} tokens {vlm.name} holds")
    model, tokenizer = vlm.model, vlm.processor.tokenizer
    config = GenerationConfig.from_dict({**model.generation_config.to_dict(), "do_sample": False,
                                         "temperature": None, "top_p": None, "top_k": None, "num_beams": 1,
                                         "max_new_tokens": max_new, "min_new_tokens": None, "max_length": None})
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.eos_token_id
    tracker = TextTracker(tokenizer, options.stop, on_text)
    processors = sampling_processors(options.temperature, options.top_p, options.seed, model.device)
    with torch.inference_mode():
        model.generate(**encoded, generation_config=config, logits_processor=LogitsProcessorList(processors),
                       stopping_criteria=StoppingCriteriaList([tracker.criterion()]), streamer=tracker)
    new_ids = tracker.ids  # the streamed tokens: after the prompt (decoder-only) or the decoder start (Florence-2)
    eos = config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    hit_eos = bool(new_ids) and new_ids[-1] in eos_ids
    finish = "stop" if tracker.stopped or hit_eos or len(new_ids) < max_new else "length"
    return Generation(tracker.text, prompt_tokens, len(new_ids), finish)


class Ask(Node):
    """Ask a vision-language model about a picture: SmolVLM (``smolvlm-256m``, ``smolvlm-500m``), Qwen2.5-VL
    (``qwen2.5-vl-3b``), Florence-2 (``florence-2-base``, task prompts such as ``<MORE_DETAILED_CAPTION>``), a
    folder or Hub id of a transformers image-text-to-text model, or ``tiny/vlm`` (random weights: word salad).
    Every picture of the ``image`` batch goes into the one question, where the model takes several.
    Tokens stream as progress events, each carrying the text it added as a ``delta``; temperature 0 is greedy."""

    type_id = "image.ask"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        image: Image = Field(description="The picture to ask about (a batch: all its pictures in one question)")
        question: str = TextInput(description="What to ask about the picture")
        system: str = TextInput("", description="System message (instructions), when the model takes one")
        model: str = ModelInput("smolvlm-256m", kind=VISION_LM, description="smolvlm-256m, smolvlm-500m, "
                                                                            "qwen2.5-vl-3b, florence-2-base, tiny/vlm "
                                                                            "(random words), a Hub id or a local "
                                                                            "folder")
        max_new_tokens: int = Field(128, ge=1, le=32768, description="Most tokens to generate")
        temperature: float = Field(0.0, ge=0.0, le=5.0, description="0 = greedy (always the likeliest token)")
        top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling: keep this much probability")
        seed: int = SeedInput(0, description="Sampling seed; -1 draws one (recorded in the run)")

    class Outputs(NodeOutputs):
        text: str = Field(description="The answer")
        usage: dict[str, Any] = Field(description="prompt_tokens (image tokens included), completion_tokens, "
                                      "total_tokens, context_length, seconds, tokens_per_second, finish_reason")

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        problems: list[tuple[str | None, str]] = []
        question = literal(literals, bound, self.Inputs, "question")
        if isinstance(question, str) and not question.strip():
            problems.append(("question", "the question is empty"))
        return problems

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        if not inputs.question.strip():
            raise NodeError("the question is empty", input="question")
        options = GenerateOptions(max_new_tokens=inputs.max_new_tokens, temperature=inputs.temperature,
                                  top_p=inputs.top_p, seed=inputs.seed)
        pictures = [picture.convert("RGB") for picture in inputs.image.to_pil()]

        def on_text(delta: str, tokens: int) -> None:
            ctx.progress(tokens, options.max_new_tokens, delta=delta or None)

        vlm = open_vision_lm(inputs.model, ctx)
        start = time.perf_counter()
        result = ask(vlm, pictures, inputs.question, options, inputs.system, on_text, ctx.warn)
        return self.Outputs(text=result.text, usage=usage(result, vlm.context, time.perf_counter() - start))

"""Text generation: transformers causal LMs through the model resolver, or any OpenAI-compatible server.

The node is a thin shell over ``open_causal_lm`` and ``generate``, which the HTTP server reuses for its
OpenAI-compatible chat endpoint: load a local causal LM once (per device, through the model manager), then
generate from chat messages, streaming each new piece of text through a callback.

Sampling is seeded without touching torch's global RNG: after the temperature and top-p warpers, Gumbel noise from
a private generator is added and the argmax taken, which draws exactly from the warped distribution. Two nodes
sampling at once on one machine therefore stay reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, ModelKind, SeedInput, TextInput
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ModelSource
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.nodes.family_helpers import literal, on_device, quiet_transformers, torch_device
from nodeforge.nodes.llm_stream import TextCallback, TextTracker, sampling_processors
from nodeforge.nodes.models.catalogue.resolver import Resolver
from nodeforge.nodes.models.checkpoints.gguf_llm import GGUFError, is_gguf, user_gguf_folder
from nodeforge.nodes.models.tiny.tiny_media import TINY_LLM_CONTEXT

ROLES = ("system", "user", "assistant")
FAMILIES = ("llm",)
CAUSAL_LM = ModelKind("llm", FAMILIES, remote=True)
"""A causal language model (transformers or GGUF), or an OpenAI-compatible server's (``openai:<model>``)."""
KNOWN_CONTEXT = {"tiny/llm": TINY_LLM_CONTEXT}  # room for the node's default 256 new tokens and a long prompt

WarningCallback = Callable[[str], None]


@dataclass(frozen=True)
class CausalLM:
    """A loaded local causal LM: model, tokenizer and the number of tokens its context holds."""

    name: str
    model: Any
    tokenizer: Any
    context: int

    def to(self, device: str) -> CausalLM:
        """Moved to another device (the model manager offloads models with this)."""
        return CausalLM(self.name, self.model.to(torch_device(device)), self.tokenizer, self.context)

    def parameters(self) -> Any:
        return self.model.parameters()

    def buffers(self) -> Any:
        return self.model.buffers()


@dataclass(frozen=True)
class GenerateOptions:
    """How to generate: ``temperature`` 0 means greedy; ``max_new_tokens`` 0 means as many as the context holds
    after the prompt; ``stop`` strings end the text (and are not part of it)."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """A finished generation. ``finish_reason`` is ``stop`` (end of turn or a stop string) or ``length``.
    ``counted`` is False when the token counts are unknown (an OpenAI-compatible server that reported no usage);
    both counts are 0 then."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    counted: bool = True


def usage(result: Generation, context: int | None, seconds: float) -> dict[str, Any]:
    """What a generation took, as ``llm.generate`` reports it: token counts (None when not counted), the model's
    context length (None when unknown: OpenAI-compatible servers do not say), the wall time and the completion
    tokens per second."""
    counted = result.counted
    completion = result.completion_tokens if counted else None
    return {"prompt_tokens": result.prompt_tokens if counted else None, "completion_tokens": completion,
            "total_tokens": result.prompt_tokens + result.completion_tokens if counted else None,
            "context_length": context, "seconds": round(seconds, 6),
            "tokens_per_second": round(completion / seconds, 2) if completion is not None and seconds > 0 else None,
            "finish_reason": result.finish_reason}


def chat_messages(prompt: str, system: str = "",
                  history: Sequence[Mapping[str, str]] = ()) -> list[dict[str, str]]:
    """The messages of a turn: the system message (when given), the earlier turns, then the user's prompt. A blank
    prompt after turns adds no turn: the turns are then the whole conversation, answered as it stands (a chat
    client sends it so, its last turn included)."""
    prompt_turn = [] if history and not prompt.strip() else [{"role": "user", "content": prompt}]
    return ([{"role": "system", "content": system}] if system else []) + \
        [{"role": str(turn["role"]), "content": str(turn["content"])} for turn in history] + prompt_turn


def history_problems(history: Any, system: str = "") -> list[str]:
    """What is wrong with a ``messages`` value: a list of ``{"role", "content"}`` turns, roles user and assistant
    (a system turn only first, and not beside the ``system`` input)."""
    if not isinstance(history, list):
        return ['messages is a list of {"role": "user" or "assistant", "content": text} turns']
    problems = []
    for i, turn in enumerate(history):
        if not isinstance(turn, dict) or set(turn) != {"role", "content"} or not isinstance(turn["content"], str):
            problems.append(f'messages[{i}] is not {{"role": ..., "content": text}} (exactly those two keys)')
        elif turn["role"] not in ROLES:
            problems.append(f"messages[{i}] has role {turn['role']!r}; roles are {', '.join(ROLES)}")
        elif turn["role"] == "system" and (i > 0 or system):
            problems.append(f"messages[{i}] is a system turn: give it first and leave the system input empty")
    return problems


def load_causal_lm(name: str, path: Path, device: str, data_dir: Path | None = None) -> CausalLM:
    """A transformers causal LM and its tokenizer from a local folder, on ``device`` (half precision on GPUs
    when the checkpoint is stored so). A GGUF file is converted once into a folder under the models dir of
    ``data_dir`` (``nodes.models.checkpoints.gguf_llm``), and that folder loads."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    if is_gguf(path):
        path = gguf_folder(name, path, data_dir)
    target = torch_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        dtype: Any = "auto" if target != "cpu" else torch.float32
        model = on_device(AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype), target)
    except (OSError, ValueError, KeyError) as exc:
        raise NodeError(f"model '{name}' at {path} is not a transformers causal LM: {first_line(exc)}",
                        input="model") from None
    return CausalLM(name, model, tokenizer, context_length(model, tokenizer))


def gguf_folder(name: str, path: Path, data_dir: Path | None) -> Path:
    """The converted transformers folder of the GGUF file behind ``name`` (a NodeError on ``model`` when the file
    is damaged or not a causal LM transformers reads)."""
    try:
        return user_gguf_folder(path, Resolver.models_dir(data_dir))
    except GGUFError as exc:
        raise NodeError(f"model '{name}': {exc}", input="model") from None


def context_length(model: Any, tokenizer: Any) -> int:
    """Tokens the model attends over: from its config, else the tokenizer's limit, else a conservative 2048."""
    config = model.config
    config = getattr(config, "get_text_config", lambda: config)()
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", 0)
    return limit if 0 < limit < 1_000_000 else 2048


def open_causal_lm(name: str, ctx: NodeContext) -> CausalLM:
    """The causal LM ``name`` resolved (tiny, path, alias, Hub id) and resident on the node's device."""
    return ctx.models.load(name, lambda resolved, device: load_causal_lm(name, resolved.path, device, ctx.data_dir))


def render_prompt(tokenizer: Any, messages: Sequence[Mapping[str, str]]) -> str:
    """The tokenizer's chat template applied to the messages when it has one; else the contents as plain text."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return "\n\n".join(message["content"] for message in messages if message["content"])


def generate(lm: CausalLM, messages: Sequence[Mapping[str, str]], options: GenerateOptions,
             on_text: TextCallback | None = None, on_warning: WarningCallback | None = None) -> Generation:
    """Generate a reply to ``messages``. ``on_text(delta, tokens_so_far)`` is called for every new token with the
    text it added (often empty: a held-back character; joined, the deltas are the text) and may raise to stop, e.g.
    on cancel; ``on_warning`` hears about values that had to change (a token budget cut to fit the context)."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    tokenizer, model = lm.tokenizer, lm.model
    encoded = tokenizer(render_prompt(tokenizer, messages), return_tensors="pt", add_special_tokens=False)
    prompt_tokens = int(encoded["input_ids"].shape[1])
    room = lm.context - prompt_tokens
    if room < 1:
        raise NodeError(f"the prompt is {prompt_tokens} tokens; {lm.name} holds {lm.context} tokens of context",
                        input="prompt")
    max_new = options.max_new_tokens or room
    if max_new > room:
        max_new = room
        if on_warning is not None:
            on_warning(f"max_new_tokens cut from {options.max_new_tokens} to {room}: the prompt takes "
                       f"{prompt_tokens} of the {lm.context} tokens {lm.name} holds")
    config = GenerationConfig.from_dict({**model.generation_config.to_dict(), "do_sample": False,
                                         "temperature": None, "top_p": None, "top_k": None, "num_beams": 1,
                                         "max_new_tokens": max_new, "min_new_tokens": None, "max_length": None})
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.eos_token_id
    tracker = TextTracker(tokenizer, options.stop, on_text)
    device = model.device
    processors = sampling_processors(options.temperature, options.top_p, options.seed, device)
    with torch.inference_mode():
        output = model.generate(
            **{key: value.to(device) for key, value in encoded.items()}, generation_config=config,
            logits_processor=LogitsProcessorList(processors),
            stopping_criteria=StoppingCriteriaList([tracker.criterion()]), streamer=tracker)
    new_ids = output[0, prompt_tokens:].tolist()
    eos = config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    hit_eos = bool(new_ids) and new_ids[-1] in eos_ids
    finish = "stop" if tracker.stopped or hit_eos or len(new_ids) < max_new else "length"
    return Generation(tracker.text, prompt_tokens, len(new_ids), finish)


class Generate(Node):
    """Generate text with a language model: a local transformers causal LM (``tiny/llm``, the shipped
    ``smollm2-135m-instruct``, an alias such as ``qwen2.5-0.5b-instruct``, a folder, a ``.gguf`` file or a Hub
    id) or ``openai:<model>`` on any OpenAI-compatible server (``NODEFORGE_OPENAI_BASE_URL`` /
    ``OPENAI_API_KEY``). The chat template is used when the model has one.
    Tokens stream as progress events, each carrying the text it added as a ``delta``. ``usage`` says what the
    generation took: prompt, completion and total tokens (by the model's tokenizer, or as the server reports them),
    the context length, the seconds it ran (a local model's loading not included) and tokens per second."""

    type_id = "llm.generate"
    version = "1.3.0"
    accelerator = True

    class Inputs(NodeInputs):
        prompt: str = TextInput(description="What to ask or continue; may be empty when messages hold the whole "
                                            "conversation")
        system: str = TextInput("", description="System message (instructions), when the model takes one")
        model: str = ModelInput("tiny/llm", kind=CAUSAL_LM, description="tiny/llm, a shipped model, an alias, a "
                                                                        "folder, a .gguf file, a Hub id, or "
                                                                        "openai:<model>")
        max_new_tokens: int = Field(256, ge=0, le=32768, description="Most tokens to generate; 0: as many as "
                                    "the context holds")
        temperature: float = Field(0.7, ge=0.0, le=5.0, description="0 = greedy (always the likeliest token)")
        top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling: keep this much probability")
        seed: int = SeedInput(0, description="Sampling seed; -1 draws one (recorded in the run)")
        stop: list[str] = Field(default_factory=list, description="Strings that end the text (not included)")
        messages: list[dict[str, Any]] = Field(default_factory=list,
                                               description='Earlier turns of a chat, oldest first: [{"role": "user" '
                                                           'or "assistant", "content": text}]; the prompt is the '
                                                           "next user turn (none when the prompt is empty)")

    class Outputs(NodeOutputs):
        text: str
        usage: dict[str, Any] = Field(description="prompt_tokens, completion_tokens, total_tokens, "
                                      "context_length, seconds, tokens_per_second, finish_reason (null where "
                                      "unknown)")

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        problems: list[tuple[str | None, str]] = []
        history, system = literals.get("messages"), literals.get("system")
        if history is not None and "messages" not in bound:
            shown = system if isinstance(system, str) else ""
            problems.extend(("messages", problem) for problem in history_problems(history, shown))
        model = literal(literals, bound, self.Inputs, "model")
        if not isinstance(model, str):
            return problems
        if models.remote_name(model) is not None:
            return problems
        context = KNOWN_CONTEXT.get(model)
        max_new = literal(literals, bound, self.Inputs, "max_new_tokens")
        if context and isinstance(max_new, int) and max_new >= context:
            problems.append(("max_new_tokens", f"{max_new} tokens do not fit: {model} holds {context} tokens of "
                                               "context, prompt included"))
        return problems

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        if not inputs.prompt.strip() and not inputs.messages:
            raise NodeError("the prompt is empty", input="prompt")
        options = GenerateOptions(max_new_tokens=inputs.max_new_tokens, temperature=inputs.temperature,
                                  top_p=inputs.top_p, seed=inputs.seed, stop=tuple(inputs.stop))
        problems = history_problems(inputs.messages, inputs.system)
        if problems:
            raise NodeError(problems[0], input="messages")
        messages = chat_messages(inputs.prompt, inputs.system, inputs.messages)

        def on_text(delta: str, tokens: int) -> None:
            ctx.progress(tokens, options.max_new_tokens or None, delta=delta or None)

        remote = ctx.models.remote(inputs.model)
        if remote is not None:
            from nodeforge.nodes.openai_chat import chat_completion

            start, context = time.perf_counter(), None
            result = chat_completion(remote, messages, options,
                                     on_text, data_dir=ctx.data_dir)
        else:
            lm = open_causal_lm(inputs.model, ctx)
            start, context = time.perf_counter(), lm.context
            result = generate(lm, messages, options, on_text, ctx.warn)
        return self.Outputs(text=result.text, usage=usage(result, context, time.perf_counter() - start))

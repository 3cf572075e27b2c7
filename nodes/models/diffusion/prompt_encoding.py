"""Prompts encoded as ComfyUI encodes them (v0.3.64), with the pipeline's own CLIP tokenizers and text encoders, so
a ComfyUI workflow's prompt gives the same conditioning here: weights, emphasis, escapes (``prompt_syntax``), long
prompts in chunks, and textual-inversion embeddings.

The one entry point::

    prompt_kwargs(pipe, family, prompt, negative, *, guidance, embeddings, clip_layer=None, syntax="comfy",
                  normalize=True) -> dict | None

``pipe`` is the diffusers pipeline about to be called (inside the LoRA block, so text-encoder LoRAs apply),
``family`` one of sd, sdxl, sd3, flux, ``prompt`` one string or one per picture of the batch, ``negative`` the
negative prompt (encoded, also when empty, as ComfyUI encodes it, when ``guidance`` is on: cfg > 1),
``embeddings(name)`` the embedding file for a name or None when there is none, ``clip_layer`` ComfyUI's
``CLIPSetLastLayer.stop_at_clip_layer`` (-1 the last layer, -2 the one before; None: the family's default, the last
layer for SD 1.x/2.x and the penultimate for SDXL; A1111's "Clip skip n" is -n). It returns the call arguments
``prompt_embeds`` (and ``negative_prompt_embeds``; for SDXL ``pooled_prompt_embeds`` and
``negative_pooled_prompt_embeds``) that replace ``prompt`` and ``negative_prompt``. For SD3 and Flux it returns None
when the prompts are plain text (the pipeline encodes them) and raises NotReproduced when they use the syntax: their
T5 weighting is not reproduced, and the caller warns that the text goes in as written. An embedding name without a
file, or one made for other text encoders, is a NodeError on ``prompt``. ``syntax="a1111"`` reads an A1111 prompt
(an imported PNG's) as A1111 1.x does, following its source (``modules/sd_hijack_clip.py``): A1111's brackets and
BREAK, chunks of 75 tokens that move the text after a comma within the last 20 tokens to the next chunk, and each
chunk's output multiplied by its weights, then rescaled to its former mean when ``normalize`` (A1111's default
"Original" emphasis; False is its "No norm"). A1111 finds embeddings by their bare names in its folder, which is
not done here; its prompt editing (``[a:b:0.5]``), ``AND`` and the open_clip tokenizer of SDXL's second encoder
(the pipeline's tokenizer is used) are not reproduced either.

How ComfyUI encodes, per CLIP text encoder: each weighted run is tokenized whole (an embedding word becomes its
vectors); runs are packed into chunks of 75 tokens between a start and an end token, a run of fewer than 8 tokens
that does not fit starts the next chunk, a longer one is split; chunks are padded to 77 (with the end token, or 0
for OpenCLIP encoders: SD 2.x, SDXL's second). Each chunk is encoded, and when any weight is not 1 every position is
moved away from the empty prompt's encoding at that position: ``(z - empty) * weight + empty``. Chunks are joined
along the sequence; the pooled output is the first chunk's. Conditionings of different lengths (a long prompt and a
short negative) are repeated to a common length, as ComfyUI does before it batches them: attention over a sequence
repeated whole gives the same result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError
from nodeforge.nodes.models.diffusion.prompt_syntax import (
    A1111_BREAK,
    EMBEDDING_PREFIX,
    a1111_segments,
    comfy_segments,
    embedding_candidates,
    has_syntax,
    split_embeddings,
)

if TYPE_CHECKING:
    import torch

EMBEDDING = ModelKind("embedding")
EmbeddingFiles = Callable[[str], Path | None]
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")  # tried after the name as written, as ComfyUI does
CHUNK = 77  # CLIP's context: 75 prompt tokens between the start and end tokens
LONG_RUN = 8  # a run of this many tokens or more is split across chunks rather than moved to the next
COMMA_BACKTRACK = 20  # A1111's comma_padding_backtrack default


class NotReproduced(Exception):
    """The prompt uses syntax that this family's encoding here does not reproduce as ComfyUI does."""


@dataclass(frozen=True)
class Clip:
    """One CLIP text encoder as ComfyUI sets it up: ``key`` names its part of an embedding file (clip_l, clip_g,
    clip_h), ``pad_with_end`` whether it pads with the end token (else with token 0), ``penultimate`` whether the
    family's default is the layer before the last, ``norm_hidden`` whether the chosen layer's output goes through
    the final layer norm."""

    tokenizer: Any
    encoder: Any
    key: str
    pad_with_end: bool
    penultimate: bool
    norm_hidden: bool
    missing_layers: int = 0  # layers the checkpoint's encoder lacks at the end (SD 2.x in diffusers: one)
    start: int = field(init=False)
    end: int = field(init=False)
    pad: int = field(init=False)

    def __post_init__(self) -> None:
        empty = self.tokenizer("")["input_ids"]  # the start and end tokens, as ComfyUI finds them
        object.__setattr__(self, "start", int(empty[0]))
        object.__setattr__(self, "end", int(empty[1]))
        object.__setattr__(self, "pad", self.end if self.pad_with_end else 0)


def embedding_files(resolve: Callable[[str], Path]) -> EmbeddingFiles:
    """ComfyUI's embedding lookup over nodeforge's model names: the name as written, then with each of
    EMBEDDING_SUFFIXES; None when none is a file. ``resolve`` gives a model name's path or raises NodeError (the
    node's ``ctx.models.resolve``: search folders, aliases, paths). A name written as ``org/name`` is only tried
    with a suffix, so an embedding in a subfolder never becomes a Hub download."""

    def find(name: str) -> Path | None:
        bare = [name] if "/" not in name or name.lower().endswith(EMBEDDING_SUFFIXES) else []
        for candidate in (*bare, *(name + suffix for suffix in EMBEDDING_SUFFIXES)):
            try:
                path = resolve(candidate)
            except NodeError:
                continue
            if path.is_file():
                return path
        return None

    return find


def family_clips(pipe: Any, family: str) -> list[Clip]:
    """The CLIP encoders ComfyUI uses for a family, over the pipeline's modules."""
    if family == "sd":
        encoder = pipe.text_encoder
        if int(encoder.config.hidden_size) == 1024:  # SD 2.x: OpenCLIP ViT-H, 24 layers in ComfyUI, penultimate
            missing = 1 if int(encoder.config.num_hidden_layers) == 23 else 0  # diffusers drops the last layer
            return [Clip(pipe.tokenizer, encoder, "clip_h", pad_with_end=False, penultimate=True, norm_hidden=True,
                         missing_layers=missing)]
        return [Clip(pipe.tokenizer, encoder, "clip_l", pad_with_end=True, penultimate=False, norm_hidden=True)]
    if family == "sdxl":
        clips = [Clip(pipe.tokenizer_2, pipe.text_encoder_2, "clip_g", pad_with_end=False, penultimate=True,
                      norm_hidden=False)]
        if pipe.text_encoder is not None:  # a refiner has only the second encoder
            clips.insert(0, Clip(pipe.tokenizer, pipe.text_encoder, "clip_l", pad_with_end=True, penultimate=True,
                                 norm_hidden=False))
        return clips
    raise NotReproduced(f"ComfyUI's prompt encoding is not reproduced for {family} models")


@dataclass
class Encoding:
    """How one call encodes: embedding files by name (read once per call into ``cache``), ComfyUI's CLIP layer,
    the syntax (comfy or a1111) and whether A1111's weights keep the chunk's mean, on ``device``."""

    embeddings: EmbeddingFiles
    clip_layer: int | None = None
    syntax: str = "comfy"
    normalize: bool = True
    device: Any = "cpu"
    cache: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)


def tokenize(text: str, clip: Clip, how: Encoding) -> list[list[tuple[Any, float]]]:
    """ComfyUI's ``tokenize_with_weights``: the prompt as chunks of 77 (token or embedding vector, weight)."""
    if how.syntax == "a1111":
        return a1111_tokenize(text, clip)
    runs: list[list[tuple[Any, float]]] = []
    for segment, weight in comfy_segments(text):
        for word in split_embeddings(segment):
            if word.startswith(EMBEDDING_PREFIX):
                vectors, word = _embedding(word, clip, how.embeddings, how.cache)
                runs.append([(vector, weight) for vector in vectors])
                if not word:
                    continue
            ids = clip.tokenizer(word, verbose=False)["input_ids"]  # long runs are chunked here, not truncated
            runs.append([(token, weight) for token in ids[1:-1]])
    return _chunks(runs, clip)


def _chunks(runs: list[list[tuple[Any, float]]], clip: Clip) -> list[list[tuple[Any, float]]]:
    room = CHUNK - 1  # the end token closes every chunk
    chunk: list[tuple[Any, float]] = [(clip.start, 1.0)]
    chunks = [chunk]
    for run in runs:
        long_run = len(run) >= LONG_RUN
        while run:
            if len(chunk) + len(run) <= room:
                chunk.extend(run)
                break
            free = room - len(chunk)
            if long_run:
                chunk.extend(run[:free])
                run = run[free:]
            chunk.append((clip.end, 1.0))
            chunk.extend([(clip.pad, 1.0)] * (CHUNK - len(chunk)))
            chunk = [(clip.start, 1.0)]
            chunks.append(chunk)
    chunk.append((clip.end, 1.0))
    chunk.extend([(clip.pad, 1.0)] * (CHUNK - len(chunk)))
    return chunks


def a1111_tokenize(text: str, clip: Clip, backtrack: int = COMMA_BACKTRACK) -> list[list[tuple[Any, float]]]:
    """A1111's ``tokenize_line``: runs tokenized without start and end tokens and packed 75 to a chunk; BREAK
    closes a chunk, and a chunk that fills up within ``backtrack`` tokens after a comma gives the tokens after that
    comma to the next. Chunks are padded with the end token (then the pad token after the first end token)."""
    comma = clip.tokenizer.get_vocab().get(",</w>")
    room = CHUNK - 2
    chunks: list[list[tuple[Any, float]]] = []
    chunk: list[tuple[Any, float]] = []
    last_comma = -1

    def close() -> None:
        nonlocal chunk, last_comma
        padding = [(clip.end, 1.0)] + [(clip.pad, 1.0)] * (room - len(chunk))
        chunks.append([(clip.start, 1.0), *chunk, *padding])
        chunk, last_comma = [], -1

    for part, weight in a1111_segments(text):
        if (part, weight) == A1111_BREAK:
            close()
            continue
        for token in clip.tokenizer(part, add_special_tokens=False, verbose=False)["input_ids"]:
            if token == comma:
                last_comma = len(chunk)
            elif backtrack and len(chunk) == room and last_comma != -1 and len(chunk) - last_comma <= backtrack:
                moved = chunk[last_comma + 1:]
                chunk = chunk[:last_comma + 1]
                close()
                chunk = moved
            if len(chunk) == room:
                close()
            chunk.append((token, weight))
    if chunk or not chunks:
        close()
    return chunks


def _embedding(word: str, clip: Clip, embeddings: EmbeddingFiles,
               cache: dict[tuple[str, str], torch.Tensor]) -> tuple[list[torch.Tensor], str]:
    """The vectors of the embedding a word names and the text left over after the name."""
    candidates = embedding_candidates(word)
    if not candidates:
        raise NodeError(f"'{EMBEDDING_PREFIX}' is not followed by an embedding name", input="prompt")
    for name, leftover in candidates:
        if (name, clip.key) not in cache:
            path = embeddings(name)
            if path is None:
                continue
            cache[name, clip.key] = read_embedding(path, name, clip)
        return list(cache[name, clip.key]), leftover
    raise NodeError(f"embedding '{candidates[0][0]}' was not found: put its .safetensors or .pt file where models "
                    "are found (a search folder) or name its path", input="prompt")


def read_embedding(path: Path, name: str, clip: Clip) -> torch.Tensor:
    """An embedding file's vectors for one encoder, shape (n, width): A1111's ``.pt`` (``string_to_param``),
    single-tensor safetensors (``emb_params``), SDXL's ``clip_l``/``clip_g`` pairs."""
    import torch

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path), device="cpu")
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a file of any kind that does not read is one message naming it
        raise NodeError(f"embedding '{name}' ({path}) could not be read: {type(exc).__name__}: {exc}",
                        input="prompt") from None
    tensor: Any = None
    if isinstance(data, dict):
        if isinstance(data.get("string_to_param"), dict):
            tensor = next(iter(data["string_to_param"].values()), None)
        elif clip.key in data:
            tensor = data[clip.key]
        elif data:
            tensor = next(iter(data.values()))
    width = int(clip.encoder.config.hidden_size)
    if not isinstance(tensor, torch.Tensor) or tensor.shape[-1] != width:
        found = f"vectors of width {tensor.shape[-1]}" if isinstance(tensor, torch.Tensor) else "no vectors"
        raise NodeError(f"embedding '{name}' ({path}) has {found}; this model's {clip.key} text encoder takes "
                        f"{width}: the embedding was made for another model", input="prompt")
    return tensor.reshape(-1, width).float()


def encode(chunks: list[list[tuple[Any, float]]], clip: Clip,
           how: Encoding) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ComfyUI's ``encode_token_weights``: the chunks encoded, weighted against the empty prompt (A1111: multiplied,
    see the module docstring), joined along the sequence, float32 (1, 77 x chunks, width); and the first chunk's
    pooled output."""
    import torch

    weighted = any(weight != 1.0 for chunk in chunks for _, weight in chunk)
    batch = [[token for token, _ in chunk] for chunk in chunks]
    if weighted and how.syntax == "comfy":
        batch.append([clip.start, clip.end] + [clip.pad] * (CHUNK - 2))
    hidden, pooled = _forward(batch, clip, how.clip_layer, how.device)
    parts = []
    for k, chunk in enumerate(chunks):
        z = hidden[k]
        weights = torch.tensor([weight for _, weight in chunk], dtype=torch.float32, device=z.device)[:, None]
        if weighted and how.syntax == "comfy":
            z = torch.where(weights != 1.0, (z - hidden[-1]) * weights + hidden[-1], z)
        elif how.syntax == "a1111":
            mean = z.mean()
            z = z * weights
            z = z * (mean / z.mean()) if how.normalize else z
        parts.append(z)
    return torch.cat(parts, dim=0)[None], None if pooled is None else pooled[0:1]


def _forward(batch: list[list[Any]], clip: Clip, clip_layer: int | None,
             device: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The chosen layer's hidden states (float32) and pooled output for token rows; embedding vectors go into the
    token embedding's output by a forward hook for this call only (their ids hold the start token, which is never
    the end token that locates the pooled output)."""
    import torch

    ids = torch.tensor([[token if isinstance(token, int) else clip.start for token in row] for row in batch],
                       device=device)
    vectors = [(i, j, token) for i, row in enumerate(batch) for j, token in enumerate(row)
               if not isinstance(token, int)]

    def insert(_module: Any, _args: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        for i, j, vector in vectors:
            output[i, j] = vector.to(device=output.device, dtype=output.dtype)
        return output

    hook = clip.encoder.get_input_embeddings().register_forward_hook(insert) if vectors else None
    try:
        with torch.no_grad():
            out = clip.encoder(ids, output_hidden_states=True)
    finally:
        if hook is not None:
            hook.remove()
    hidden = out.hidden_states[layer_index(clip, clip_layer, len(out.hidden_states))]
    if clip.norm_hidden:  # for the last layer this is the encoder's own last_hidden_state
        transformer = getattr(clip.encoder, "text_model", clip.encoder)  # transformers 5's CLIPTextModel is flat
        hidden = transformer.final_layer_norm(hidden)
    pooled = getattr(out, "text_embeds", None)
    return hidden.float(), None if pooled is None else pooled.float()


def layer_index(clip: Clip, clip_layer: int | None, states: int) -> int:
    """The index into ``hidden_states`` (embeddings first, then each layer's output) of ComfyUI's layer."""
    layers = states - 1 + clip.missing_layers  # the layers of the encoder ComfyUI loads
    if clip_layer is None:
        clip_layer = -2 if clip.penultimate else -1
    if not -layers <= clip_layer <= -1:
        raise NodeError(f"CLIP layer {clip_layer} does not exist: the {clip.key} text encoder has {layers} layers "
                        "(-1 is the last)", input="clip_layer")
    index = layers + 1 + clip_layer
    if index >= states:
        raise NodeError(f"CLIP layer {clip_layer} is not in this checkpoint: its {clip.key} text encoder lacks its "
                        f"last {clip.missing_layers} layer(s)", input="clip_layer")
    return index


def encode_prompt(text: str, clips: Sequence[Clip], how: Encoding) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One prompt's conditioning: each encoder's, cut to the shortest and joined along the features (SDXL: clip_l
    then clip_g); the pooled output is the last encoder's (clip_g for SDXL)."""
    import torch

    encoded = [encode(tokenize(text, clip, how), clip, how) for clip in clips]
    length = min(int(z.shape[1]) for z, _ in encoded)
    return torch.cat([z[:, :length] for z, _ in encoded], dim=-1), encoded[-1][1]


def same_length(conds: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Conditionings repeated along the sequence to their lengths' least common multiple (ComfyUI's concat)."""
    length = math.lcm(*(int(c.shape[1]) for c in conds))
    return [c.repeat(1, length // int(c.shape[1]), 1) for c in conds]


def prompt_kwargs(pipe: Any, family: str, prompt: str | Sequence[str], negative: str, *, guidance: bool,
                  embeddings: EmbeddingFiles, clip_layer: int | None = None, syntax: str = "comfy",
                  normalize: bool = True) -> dict[str, Any] | None:
    """The diffusers call arguments for the prompts encoded as ComfyUI encodes them (see the module docstring)."""
    import torch

    if syntax not in ("comfy", "a1111"):
        raise ValueError(f"unknown prompt syntax {syntax!r}; accepted: comfy, a1111")
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if family in ("sd3", "flux"):
        if any(has_syntax(text, syntax) for text in [*prompts, *([negative] if guidance else [])]):
            raise NotReproduced(f"prompt weights, escapes and embeddings are not applied for {family} models (their "
                                "T5 encoding is not reproduced as ComfyUI's): the prompt is used as written")
        return None
    clips = family_clips(pipe, family)
    how = Encoding(embeddings, clip_layer, syntax, normalize, pipe._execution_device)
    texts = list(dict.fromkeys([*prompts, *([negative] if guidance else [])]))
    encoded = {text: encode_prompt(text, clips, how) for text in texts}
    conds = dict(zip(texts, same_length([encoded[text][0] for text in texts]), strict=True))
    dtype = clips[-1].encoder.dtype
    kwargs: dict[str, Any] = {"prompt_embeds": torch.cat([conds[text] for text in prompts]).to(dtype)}
    if guidance:
        kwargs["negative_prompt_embeds"] = conds[negative].repeat(len(prompts), 1, 1).to(dtype)
    if family == "sdxl":
        kwargs["pooled_prompt_embeds"] = torch.cat([_pooled(encoded[text][1]) for text in prompts]).to(dtype)
        if guidance:
            kwargs["negative_pooled_prompt_embeds"] = _pooled(encoded[negative][1]).repeat(len(prompts), 1).to(dtype)
    return kwargs


def _pooled(pooled: torch.Tensor | None) -> torch.Tensor:
    if pooled is None:
        raise NodeError("the SDXL pipeline's second text encoder gives no pooled output", input="model")
    return pooled

"""Scores for comparing models and settings: ``score.clip`` (how well a picture matches its prompt),
``score.text_similarity`` (how close two texts are in meaning) and ``score.wer`` (how far a transcript is from
the reference). Each returns one float, so a sweep can put it beside every cell of a comparison.

The model-based scores load once per device through ``ctx.models`` and are deterministic (no sampling, eval
mode), so the same inputs give the same score and a re-run is a cache hit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, ModelKind, TextInput
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Image
from nodeforge.nodes.family_helpers import on_device, quiet_transformers, torch_device

CLIP_FAMILIES = ("clip",)
SENTENCE_FAMILIES = ("sentence-embedding",)
CLIP_MODEL = ModelKind("clip", CLIP_FAMILIES)
"""A CLIP model with its tokenizer and image processor (``load_clip``)."""
SENTENCE_ENCODER = ModelKind("sentence-embedding", SENTENCE_FAMILIES)
"""A sentence-transformers encoder (``load_sentence_encoder``)."""
CLIP_SCALE = 100.0  # torchmetrics' CLIPScore scale: 100 x cosine


@dataclass
class ClipScorer:
    """A loaded CLIP model with its tokenizer and image processor, as the model manager holds them."""

    model: Any
    tokenizer: Any
    processor: Any

    @property
    def components(self) -> dict[str, Any]:
        return {"model": self.model}

    def to(self, device: str) -> ClipScorer:
        self.model.to(torch_device(device))
        return self


def load_clip(resolved: ResolvedModel, device: str) -> ClipScorer:
    """CLIPModel, tokenizer and image processor of a transformers CLIP folder; the processor's PIL backend, so the
    resizing is the same with or without torchvision."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    quiet_transformers()
    try:
        model = CLIPModel.from_pretrained(str(resolved.path))
        tokenizer = AutoTokenizer.from_pretrained(str(resolved.path))
        processor = AutoImageProcessor.from_pretrained(str(resolved.path), backend="pil")
    except Exception as exc:  # noqa: BLE001 - wrong kind of folder, missing files: one message naming the model
        raise NodeError(f"model '{resolved.name}' ({resolved.path}) could not be loaded as a CLIP model: "
                        f"{type(exc).__name__}: {first_line(exc, 300)}; accepted: CLIP models "
                        "(clip-vit-base-patch32, clip-vit-large-patch14, tiny/clip, or such a folder)",
                        input="model") from None
    return ClipScorer(on_device(model, device), tokenizer, processor)


class ClipScore(Node):
    """How well each picture matches the text, by CLIP: 100 x the cosine similarity of the picture's and the
    text's CLIP embeddings (the scale of torchmetrics' CLIPScore, without its clamp at 0, so -100..100). For
    ViT-B/32, a picture that shows its prompt typically scores 25-35 and an unrelated one below 20; compare scores
    of one CLIP model only. ``score`` is the mean over the batch, ``scores`` one per picture. CLIP reads at most
    77 tokens of text; a longer text is cut there, with a warning."""

    type_id = "score.clip"
    title = "CLIP score"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        image: Image = Field(description="Pictures to score (each against the same text)")
        text: str = TextInput(description="The prompt the pictures should show")
        model: str = ModelInput("clip-vit-base-patch32", kind=CLIP_MODEL,
                                description="clip-vit-base-patch32, clip-vit-large-patch14, tiny/clip (noise), a Hub "
                                            "id or a local folder of a CLIP model")

    class Outputs(NodeOutputs):
        score: float = Field(description="100 x cosine similarity, the mean over the batch")
        scores: list[float] = Field(description="One score per picture")

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        if not inputs.text.strip():
            raise NodeError("the text is empty: there is nothing to match the pictures against", input="text")
        scorer = ctx.models.load(inputs.model, load_clip)
        limit = scorer.tokenizer.model_max_length
        length = len(scorer.tokenizer(inputs.text)["input_ids"])
        if length > limit:
            ctx.warn(f"the text is {length} tokens; {inputs.model} reads the first {limit}, the rest does not count")
        device = scorer.model.device
        tokens = scorer.tokenizer([inputs.text], truncation=True, max_length=limit, return_tensors="pt").to(device)
        pictures = [picture.convert("RGB") for picture in inputs.image.to_pil()]
        pixels = scorer.processor(images=pictures, return_tensors="pt")["pixel_values"].to(device)
        with torch.inference_mode():
            out = scorer.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                               pixel_values=pixels)
        cosine = (out.image_embeds.float() @ out.text_embeds.float().T)[:, 0]  # both unit length
        scores = [float(value) for value in (cosine * CLIP_SCALE).cpu()]
        return self.Outputs(score=sum(scores) / len(scores), scores=scores)


@dataclass
class SentenceEncoder:
    """A transformers encoder with its tokenizer, how many tokens it reads and how it pools them (``mean`` or
    ``cls``, from a sentence-transformers folder's pooling config)."""

    model: Any
    tokenizer: Any
    max_tokens: int
    pooling: str

    @property
    def components(self) -> dict[str, Any]:
        return {"model": self.model}

    def to(self, device: str) -> SentenceEncoder:
        self.model.to(torch_device(device))
        return self


def load_sentence_encoder(resolved: ResolvedModel, device: str) -> SentenceEncoder:
    """A sentence-transformers folder (or a plain transformers encoder, pooled by mean as sentence-transformers
    does for those) through AutoModel; its ``max_seq_length`` and pooling mode are read from the folder. It reads
    at most as many tokens as the tightest of its limits (position embeddings, tokenizer, sentence-transformers
    config), 512 when none is set."""
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    folder = Path(resolved.path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModel.from_pretrained(str(folder))
    except Exception as exc:  # noqa: BLE001 - wrong kind of folder, missing files: one message naming the model
        raise NodeError(f"model '{resolved.name}' ({folder}) could not be loaded as a text encoder: "
                        f"{type(exc).__name__}: {first_line(exc, 300)}; accepted: sentence-transformers models "
                        "(all-minilm-l6-v2, all-mpnet-base-v2, bge-small-en-v1.5, or such a folder)",
                        input="model") from None
    limits = [getattr(model.config, "max_position_embeddings", 0), tokenizer.model_max_length,
              _json(folder / "sentence_bert_config.json").get("max_seq_length", 0)]
    max_tokens = min((value for value in limits if isinstance(value, int) and 0 < value < 1_000_000), default=512)
    return SentenceEncoder(on_device(model, device), tokenizer, max_tokens, _pooling(folder, resolved.name))


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise NodeError(f"{path} cannot be read: {first_line(exc)}", input="model") from None
    return data if isinstance(data, dict) else {}


def _pooling(folder: Path, name: str) -> str:
    """``mean`` or ``cls`` as the folder's ``1_Pooling/config.json`` says (mean when there is none); other modes
    (max, mean-sqrt-len, weighted) would give other embeddings than the model was trained for, so they fail."""
    config = _json(folder / "1_Pooling" / "config.json")
    modes = sorted(key.removeprefix("pooling_mode_") for key, on in config.items()
                   if key.startswith("pooling_mode_") and on is True)
    if modes in ([], ["mean_tokens"]):
        return "mean"
    if modes == ["cls_token"]:
        return "cls"
    raise NodeError(f"model '{name}' pools its tokens by {' + '.join(modes)}; score.text_similarity pools by the "
                    "mean of the tokens or the CLS token", input="model")


class TextSimilarity(Node):
    """How close two texts are in meaning: the cosine similarity of their sentence embeddings (by default
    all-MiniLM-L6-v2, shipped in a wheel and run offline; its tokens are mean-pooled). Raw cosine, -1..1: the same
    text scores 1, paraphrases around 0.7-0.9, unrelated texts near 0. Each text is read up to the model's limit
    (256 tokens for MiniLM); a longer one is cut there, with a warning."""

    type_id = "score.text_similarity"
    title = "Text similarity"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        a: str = TextInput(description="One text")
        b: str = TextInput(description="The text to compare it with")
        model: str = ModelInput("all-minilm-l6-v2", kind=SENTENCE_ENCODER,
                                description="all-minilm-l6-v2 (offline), all-mpnet-base-v2, bge-small-en-v1.5, a Hub "
                                            "id or a local folder of a sentence-transformers model")

    class Outputs(NodeOutputs):
        score: float = Field(description="Cosine similarity of the two embeddings, -1..1")

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch
        from torch.nn import functional as F  # noqa: N812

        texts = {"a": inputs.a, "b": inputs.b}
        for name, text in texts.items():
            if not text.strip():
                raise NodeError(f"text {name} is empty: there is no meaning to compare", input=name)
        encoder = ctx.models.load(inputs.model, load_sentence_encoder)
        for name, ids in zip(texts, encoder.tokenizer(list(texts.values()))["input_ids"], strict=True):
            if len(ids) > encoder.max_tokens:
                ctx.warn(f"text {name} is {len(ids)} tokens; {inputs.model} reads the first {encoder.max_tokens}")
        batch = encoder.tokenizer(list(texts.values()), padding=True, truncation=True, max_length=encoder.max_tokens,
                                  return_tensors="pt").to(encoder.model.device)
        with torch.inference_mode():
            hidden = encoder.model(**batch).last_hidden_state.float()
        if encoder.pooling == "cls":
            embeddings = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            embeddings = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        cosine = F.cosine_similarity(embeddings[0:1], embeddings[1:2]).clamp(-1.0, 1.0)
        return self.Outputs(score=float(cosine[0]))


class WordErrorRate(Node):
    """Word error rate of a transcript against the reference, by jiwer (Levenshtein over words): (substitutions
    + deletions + insertions) / words in the reference. 0 is exact; it can pass 1 when the hypothesis has many extra
    words. With ``normalize`` (the default) both texts are lowercased and every Unicode punctuation character is
    removed before splitting ("Don't stop!" reads as "dont stop"; "e-mail" as "email"), so only the words count;
    without it, case and punctuation are part of the words. Words are split on any whitespace, line breaks
    included. A reference without words has no error rate: that is an error on ``reference``."""

    type_id = "score.wer"
    title = "Word error rate"
    version = "1.0.0"

    class Inputs(NodeInputs):
        reference: str = TextInput(description="What was said (the correct transcript)")
        hypothesis: str = TextInput(description="The transcript to score")
        normalize: bool = Field(True, description="Ignore case and punctuation")

    class Outputs(NodeOutputs):
        score: float = Field(description="Word error rate: 0 is exact, 0.25 one error in four reference words")
        substitutions: int = Field(description="Reference words replaced by another word")
        deletions: int = Field(description="Reference words missing from the hypothesis")
        insertions: int = Field(description="Hypothesis words that are not in the reference")

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        try:
            import jiwer
        except ImportError:
            raise NodeError("score.wer needs the jiwer package: pip install jiwer", input="reference") from None
        steps: list[Any] = [jiwer.ToLowerCase(), jiwer.RemovePunctuation()] if inputs.normalize else []
        words = jiwer.Compose([*steps, jiwer.RemoveWhiteSpace(replace_by_space=True), jiwer.RemoveMultipleSpaces(),
                               jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])
        result = jiwer.process_words(inputs.reference, inputs.hypothesis, words, words)
        if not result.references[0]:
            raise NodeError("the reference has no words" + (" once punctuation is removed" if inputs.normalize
                                                            and inputs.reference.strip() else "")
                            + ": a word error rate needs at least one reference word", input="reference")
        return self.Outputs(score=float(result.wer), substitutions=result.substitutions, deletions=result.deletions,
                            insertions=result.insertions)

"""score.clip on tiny/clip (a CLIP layout through the real transformers code), score.text_similarity on the real
all-MiniLM-L6-v2 shipped in a wheel (offline), and score.wer by jiwer on known edit counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.events import Event
from nodeforge.engine.session import RunResult, Session
from nodeforge.engine.values import Image
from nodeforge.nodes.models import build_resolver
from tests.nodes.image_support import draw_picture, image_executor, resident, succeeded

__all__ = ["image_executor"]
CAT = "A cat sits on the mat."


def node(type_id: str, **inputs: Any) -> dict[str, Any]:
    return {"type": type_id, "inputs": inputs}


def run_on(session: Session, nodes: dict[str, Any], events: list[Event] | None = None,
           **pictures: Image) -> RunResult:
    """Run ``nodes`` with the pictures as graph inputs of type image."""
    document = parse_document({"inputs": {name: {"type": "image"} for name in pictures}, "nodes": nodes})
    return session.run(document, pictures, listener=events.append if events is not None else None)


def pictures() -> Image:
    """Two different pictures in one batch: the drawn test picture and a flat red one."""
    import torch

    drawn = Image.from_pil([draw_picture(64)]).tensor
    red = torch.zeros_like(drawn)
    red[:, 0] = 0.8
    return Image(torch.cat([drawn, red]))


def clip_reference(images: Image, text: str) -> list[float]:
    """100 x cosine, computed the way transformers' CLIP docs show it: logits_per_image / logit_scale."""
    import torch
    from transformers import AutoTokenizer, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    folder = str(build_resolver().resolve("tiny/clip", None).path)
    model = CLIPModel.from_pretrained(folder).eval()
    batch = AutoTokenizer.from_pretrained(folder)([text], return_tensors="pt")
    pixels = CLIPImageProcessorPil.from_pretrained(folder)(images=images.to_pil(), return_tensors="pt")
    with torch.inference_mode():
        out = model(**batch, pixel_values=pixels["pixel_values"])
        return (out.logits_per_image[:, 0] / model.logit_scale.exp() * 100).tolist()


def test_clip_score_is_100_times_clips_cosine_per_picture_and_their_mean(image_executor: Session) -> None:
    text = "a photo of a red cat"
    values = succeeded(run_on(image_executor, {"s": node("score.clip", image={"input": "picture"}, text=text,
                                                         model="tiny/clip")}, picture=pictures()))
    expected = clip_reference(pictures(), text)
    assert values["s.scores"] == pytest.approx(expected, abs=1e-4)
    assert values["s.score"] == pytest.approx(sum(expected) / 2, abs=1e-4)
    assert values["s.scores"][0] != pytest.approx(values["s.scores"][1], abs=1e-3), "each picture its own score"
    assert all(-100 <= score <= 100 for score in values["s.scores"])


def test_clip_score_is_deterministic_loads_once_and_depends_on_the_text(image_executor: Session) -> None:
    nodes = {name: node("score.clip", image={"input": "picture"}, text=text, model="tiny/clip")
             for name, text in (("a", "a red cat"), ("b", "a red cat"), ("c", "the blue sea at night"))}
    values = succeeded(run_on(image_executor, nodes, picture=pictures()))
    assert values["a.scores"] == values["b.scores"]
    assert values["a.score"] != values["c.score"]
    assert len([key for key in resident(image_executor) if key.startswith("clip:")]) == 1


def test_clip_cuts_a_long_text_with_a_warning(image_executor: Session) -> None:
    events: list[Event] = []
    long = " ".join(["a red cat"] * 40)
    values = succeeded(run_on(image_executor, {"s": node("score.clip", image={"input": "picture"}, text=long,
                                                         model="tiny/clip")}, events, picture=pictures()))
    warnings = [event.data.text or "" for event in events if event.kind == "node.warning"]
    assert any("tokens; tiny/clip reads the first 77" in warning for warning in warnings), warnings
    assert values["s.scores"] == pytest.approx(clip_reference(pictures(), " ".join(["a red cat"] * 25)), abs=1e-4)


def test_clip_refuses_an_empty_text_and_other_families(image_executor: Session) -> None:
    result = run_on(image_executor, {"s": node("score.clip", image={"input": "picture"}, text="  ",
                                               model="tiny/clip")}, picture=pictures())
    assert "input 'text': the text is empty" in result.record.nodes["s"].error
    with pytest.raises(GraphValidationError) as caught:
        run_on(image_executor, {"s": node("score.clip", image={"input": "picture"}, text="x", model="tiny/llm"),
                                "t": node("score.text_similarity", a="x", b="y", model="tiny/clip")},
               picture=pictures())
    issues = {(issue.node, issue.input): issue.message for issue in caught.value.issues}
    assert issues == {("s", "model"): "model 'tiny/llm' is a llm model; this node takes clip models",
                      ("t", "model"): "model 'tiny/clip' is a clip model; this node takes sentence-embedding models"}


def test_default_models_validate_without_loading(image_executor: Session) -> None:
    from nodeforge.engine.compiler import validate

    document = parse_document({"inputs": {"picture": {"type": "image"}}, "nodes": {
        "s": node("score.clip", image={"input": "picture"}, text="x"),
        "t": node("score.text_similarity", a="x", b="y"), "w": node("score.wer", reference="x", hypothesis="y")}})
    assert validate(document, image_executor.env) == []
    resolver = build_resolver()
    assert resolver.family_of("clip-vit-base-patch32") == "clip"
    assert resolver.family_of("all-minilm-l6-v2") == "sentence-embedding"
    assert resolver.local_problem("all-minilm-l6-v2", None) is None, "the wheel is installed: offline"


def similarity(session: Session, pairs: dict[str, tuple[str, str]], events: list[Event] | None = None,
               **inputs: Any) -> dict[str, float]:
    nodes = {name: node("score.text_similarity", a=a, b=b, **inputs) for name, (a, b) in pairs.items()}
    values = succeeded(run_on(session, nodes, events))
    return {name: values[f"{name}.score"] for name in pairs}


def test_minilm_scores_meaning_offline(image_executor: Session) -> None:
    scores = similarity(image_executor, {
        "same": (CAT, CAT), "related": (CAT, "A kitten is resting on a rug."),
        "unrelated": (CAT, "The stock market fell sharply today."),
        "swapped": ("The stock market fell sharply today.", CAT)})
    assert scores["same"] > 0.999
    assert scores["related"] > 0.5 > 0.2 > scores["unrelated"], scores
    assert scores["swapped"] == pytest.approx(scores["unrelated"], abs=1e-5)


def minilm_with_pooling(tmp_path: Path, **modes: bool) -> Path:
    """The shipped MiniLM folder with another pooling config (the weights linked, not copied)."""
    import json

    source = build_resolver().resolve("all-minilm-l6-v2", None).path
    folder = tmp_path / "minilm"
    for path in source.rglob("*"):
        if path.is_file() and path.parent.name != "1_Pooling":
            (folder / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (folder / path.relative_to(source)).symlink_to(path)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({f"pooling_mode_{k}": v for k, v in modes.items()}))
    return folder


def test_pooling_follows_the_folders_pooling_config(image_executor: Session, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = minilm_with_pooling(tmp_path, cls_token=True, mean_tokens=False)
    pair = (CAT, "A kitten is resting on a rug.")
    cls = similarity(image_executor, {"cls": pair}, model=str(folder))["cls"]
    mean = similarity(image_executor, {"mean": pair})["mean"]
    model, tokenizer = AutoModel.from_pretrained(str(folder)).eval(), AutoTokenizer.from_pretrained(str(folder))
    with torch.inference_mode():
        first = model(**tokenizer(list(pair), padding=True, return_tensors="pt")).last_hidden_state[:, 0]
    assert cls == pytest.approx(float(torch.nn.functional.cosine_similarity(first[0:1], first[1:2])), abs=1e-5)
    assert abs(cls - mean) > 1e-3

    other = minilm_with_pooling(tmp_path / "max", max_tokens=True)
    result = run_on(image_executor, {"t": node("score.text_similarity", a="x", b="y", model=str(other))})
    assert "pools its tokens by max_tokens; score.text_similarity pools by the mean" in result.record.nodes["t"].error


def test_text_similarity_warns_past_the_token_limit_and_refuses_empty_text(image_executor: Session) -> None:
    events: list[Event] = []
    long = " ".join(["the cat sat on the mat"] * 60)
    assert similarity(image_executor, {"long": (long, CAT)}, events)["long"] > 0.3
    warnings = [event.data.text or "" for event in events if event.kind == "node.warning"]
    assert any("text a is" in w and "all-minilm-l6-v2 reads the first 256" in w for w in warnings), warnings
    result = run_on(image_executor, {"t": node("score.text_similarity", a=CAT, b="\n")})
    assert "input 'b': text b is empty" in result.record.nodes["t"].error


WER_CASES = {  # name: (reference, hypothesis, normalize, (score, substitutions, deletions, insertions))
    "exact": ("the cat sat on the mat", "the cat sat on the mat", True, (0.0, 0, 0, 0)),
    "substitution": ("the cat sat down", "the cat sat up", True, (0.25, 1, 0, 0)),
    "deletion": ("the cat sat down", "the cat down", True, (0.25, 0, 1, 0)),
    "insertion": ("the cat sat down", "the big cat sat down", True, (0.25, 0, 0, 1)),
    "nothing heard": ("the cat sat down", "", True, (1.0, 0, 4, 0)),
    "past one": ("a b", "x y z w", True, (2.0, 2, 0, 2)),
    "mixed": ("one two three four five", "oh one too three five", True, (0.6, 1, 1, 1)),
    "normalized": ("Hello, World! Don't stop.", "hello world dont stop", True, (0.0, 0, 0, 0)),
    "verbatim": ("Hello, World! Don't stop.", "hello world dont stop", False, (1.0, 4, 0, 0)),
    "line breaks": ("the cat\nsat\tdown", "  the cat sat   down ", False, (0.0, 0, 0, 0)),
}


def test_word_error_rate_counts_edits_over_reference_words(image_executor: Session) -> None:
    nodes = {f"n{i}": node("score.wer", reference=ref, hypothesis=hyp, normalize=norm)
             for i, (ref, hyp, norm, _) in enumerate(WER_CASES.values())}
    values = succeeded(run_on(image_executor, nodes))
    for i, (name, (*_, expected)) in enumerate(WER_CASES.items()):
        found = tuple(values[f"n{i}.{port}"] for port in ("score", "substitutions", "deletions", "insertions"))
        assert found == pytest.approx(expected), name


def test_a_reference_without_words_is_an_error_on_reference(image_executor: Session) -> None:
    result = run_on(image_executor, {"empty": node("score.wer", reference=" \n", hypothesis="words"),
                                     "marks": node("score.wer", reference="?!", hypothesis="")})
    errors = {name: state.error for name, state in result.record.nodes.items()}
    assert "input 'reference': the reference has no words: a word error rate" in errors["empty"]
    assert "input 'reference': the reference has no words once punctuation is removed" in errors["marks"]

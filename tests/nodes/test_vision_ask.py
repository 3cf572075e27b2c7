"""image.ask on tiny/vlm: a real Idefics3 (SmolVLM layout) model with random weights, its real processor and chat
template, and generation through llm.generate's seeded sampling and streaming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import load_document, parse_document
from nodeforge.engine.errors import GraphValidationError, NodeError
from nodeforge.engine.events import Event
from nodeforge.engine.model_source import ResolvedModel
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session
from nodeforge.nodes.llm import GenerateOptions
from nodeforge.nodes.models import build_resolver
from nodeforge.nodes.models.tiny.tiny_vlm import IMAGE_SEQ_LEN
from nodeforge.nodes.vision import VisionLM, ask, encode, load_vision_lm

ROOT = Path(__file__).resolve().parents[2]
TILES = 5  # a square picture at the tiny processor's 64 px long edge: 2 x 2 tiles of 32 px and the global view


@pytest.fixture(autouse=True)
def shared_models(shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))


@pytest.fixture
def tiny_vlm(data_dir: Path) -> VisionLM:
    return load_vision_lm(build_resolver().resolve("tiny/vlm", data_dir), "cpu")


def pictures(*colours: tuple[int, int, int]) -> list[Any]:
    from PIL import Image as PILImage

    return [PILImage.new("RGB", (64, 64), colour) for colour in colours]


def one_node(inputs: dict[str, Any]) -> Any:
    """image.ask on the sample picture."""
    nodes: dict[str, Any] = {"pic": {"type": "image.load", "inputs": {"path": str(ROOT / "graphs/assets/sample.png")}},
                             "ask": {"type": "image.ask", "inputs": {"image": {"from": "pic.image"},
                                                                     "model": "tiny/vlm", **inputs}}}
    return parse_document({"nodes": nodes, "outputs": {"text": {"from": "ask.text"}, "usage": {"from": "ask.usage"}}})


def test_the_answer_streams_as_progress_events_in_order(session: Session) -> None:
    events: list[Event] = []
    result = session.run(one_node({"question": "What is in the picture?", "max_new_tokens": 10}),
                          listener=events.append)
    assert result.record.status == "succeeded", result.record.error
    text = result.values["text"]
    assert text.strip() and text.isprintable()
    mine = [e for e in events if getattr(e.data, "node", None) == "ask"]
    kinds = [e.kind for e in mine]
    assert kinds[0] == "node.started" and kinds[-1] == "node.finished", kinds
    progress = [e for e in mine if e.kind == "node.progress"]
    assert [e.data.step for e in progress][:10] == list(range(1, 11))
    assert all(e.data.total == 10 for e in progress)
    assert "".join(e.data.delta or "" for e in progress) == text
    usage = result.values["usage"]
    assert (usage["completion_tokens"], usage["context_length"], usage["finish_reason"]) == (10, 1024, "length")


def test_greedy_is_deterministic_and_ignores_the_seed(tiny_vlm: VisionLM) -> None:
    red = pictures((220, 20, 20))
    first = ask(tiny_vlm, red, "Describe it.", GenerateOptions(max_new_tokens=12, temperature=0, seed=1))
    again = ask(tiny_vlm, red, "Describe it.", GenerateOptions(max_new_tokens=12, temperature=0, seed=2))
    assert first == again and first.completion_tokens == 12


def test_seeded_sampling_is_reproducible_and_another_seed_differs(tiny_vlm: VisionLM) -> None:
    red = pictures((220, 20, 20))

    def sample(seed: int) -> str:
        return ask(tiny_vlm, red, "Describe it.", GenerateOptions(max_new_tokens=16, temperature=1.0,
                                                                 seed=seed)).text

    assert sample(3) == sample(3)
    assert sample(3) != sample(4)


def test_two_pictures_go_into_one_question(tiny_vlm: VisionLM) -> None:
    """The processor expands one placeholder per picture, and the vision tower really encodes both pictures'
    tiles in the forward pass of the prompt."""
    seen: list[tuple[int, ...]] = []
    hook = tiny_vlm.model.model.vision_model.register_forward_hook(
        lambda module, args, output: seen.append(tuple(output.last_hidden_state.shape)))
    try:
        two = ask(tiny_vlm, pictures((220, 20, 20), (20, 20, 220)), "Which is red?",
                  GenerateOptions(max_new_tokens=4, temperature=0))
        one = ask(tiny_vlm, pictures((220, 20, 20)), "Which is red?", GenerateOptions(max_new_tokens=4,
                                                                                     temperature=0))
    finally:
        hook.remove()
    image_token = tiny_vlm.model.config.image_token_id
    for count in (1, 2):
        ids = encode(tiny_vlm, pictures(*[(0, 0, 0)] * count), "Which is red?")["input_ids"]
        assert int((ids == image_token).sum()) == count * TILES * IMAGE_SEQ_LEN
    assert [shape[0] for shape in seen] == [2 * TILES, 1 * TILES]  # one vision forward per question
    assert two.prompt_tokens == encode(tiny_vlm, pictures((0, 0, 0)) * 2, "Which is red?")["input_ids"].shape[1]
    assert two.prompt_tokens - one.prompt_tokens > TILES * IMAGE_SEQ_LEN  # one more picture's tokens and tags


def test_a_batch_of_two_pictures_runs_as_one_question_through_the_node(session: Session,
                                                                       tiny_vlm: VisionLM) -> None:
    document = parse_document({"nodes": {
        "gen": {"type": "image.generate", "inputs": {"prompt": "two foxes", "model": "tiny/sd", "count": 2,
                                                     "steps": 2, "width": 64, "height": 64, "seed": 1}},
        "ask": {"type": "image.ask", "inputs": {"image": {"from": "gen.image"}, "question": "Which is red?",
                                                "model": "tiny/vlm", "max_new_tokens": 3}},
    }, "outputs": {"pictures": {"from": "gen.image"}, "text": {"from": "ask.text"}, "usage": {"from": "ask.usage"}}})
    result = session.run(document)
    assert result.record.status == "succeeded", result.record.error
    batch = result.values["pictures"]
    assert batch.batch == 2
    expected = ask(tiny_vlm, batch.to_pil(), "Which is red?", GenerateOptions(max_new_tokens=3, temperature=0))
    assert result.values["usage"]["prompt_tokens"] == expected.prompt_tokens
    assert result.values["text"] == expected.text
    ids = encode(tiny_vlm, batch.to_pil(), "Which is red?")["input_ids"]
    assert int((ids == tiny_vlm.model.config.image_token_id).sum()) == 2 * TILES * IMAGE_SEQ_LEN


def test_a_llava_style_model_answers_about_two_pictures(tiny_vlm: VisionLM, tmp_path: Path) -> None:
    """A LLaVA layout (CLIP vision tower, projector, Llama) built here with tiny/vlm's tokenizer and template: the
    same node code reads it, one CLIP picture per placeholder."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = tiny_vlm.processor.tokenizer
    text = {"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 1024,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    vision = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "image_size": 32, "patch_size": 8, "projection_dim": 32}
    torch.manual_seed(0)
    LlavaForConditionalGeneration(LlavaConfig(text_config=text, vision_config=vision, vision_feature_layer=-1,
                                              image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
                                  ).save_pretrained(str(tmp_path))
    LlavaProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32},
                                                         crop_size={"height": 32, "width": 32}),
                   tokenizer=tokenizer, patch_size=8, num_additional_image_tokens=1,
                   vision_feature_select_strategy="default",
                   chat_template=tiny_vlm.processor.chat_template).save_pretrained(str(tmp_path))
    llava = load_vision_lm(ResolvedModel("my-llava", "path", tmp_path), "cpu")
    assert type(llava.model).__name__ == "LlavaForConditionalGeneration" and llava.several_pictures
    two = pictures((220, 20, 20), (20, 20, 220))
    assert tuple(encode(llava, two, "Which is red?")["pixel_values"].shape) == (2, 3, 32, 32)
    answer = ask(llava, two, "Which is red?", GenerateOptions(max_new_tokens=4, temperature=0))
    assert answer.completion_tokens == 4 and answer.prompt_tokens > 2 * 16  # 16 patch tokens a picture


def test_max_new_tokens_bounds_the_answer(tiny_vlm: VisionLM) -> None:
    red = pictures((220, 20, 20))
    for limit in (1, 5):
        answer = ask(tiny_vlm, red, "Describe it.", GenerateOptions(max_new_tokens=limit, temperature=0.7, seed=1))
        assert answer.completion_tokens == limit and answer.finish_reason == "length"
        ids = tiny_vlm.processor.tokenizer(answer.text, add_special_tokens=False)["input_ids"]
        assert len(ids) <= limit


@pytest.mark.parametrize(("inputs", "where", "reason"), [
    ({"model": "tiny/nope", "question": "What?"}, "model", "unknown tiny model 'tiny/nope'"),
    ({"model": "tiny/llm", "question": "What?"}, "model", "is a llm model; this node takes vlm models"),
    ({"question": "  "}, "question", "the question is empty"),
])
def test_validation_names_the_node_and_input(session: Session, inputs: dict[str, Any], where: str,
                                             reason: str) -> None:
    with pytest.raises(GraphValidationError) as caught:
        session.run(one_node(inputs))
    issues = [(issue.node, issue.input) for issue in caught.value.issues]
    assert ("ask", where) in issues, caught.value.issues
    assert reason in str(caught.value)


@pytest.mark.parametrize("name", ["no-such-vlm", "no-org/no-such-vlm"])
def test_an_unknown_name_or_uncached_hub_id_fails_naming_the_input(session: Session, name: str) -> None:
    result = session.run(one_node({"model": name, "question": "What?"}))
    assert result.record.status == "failed"
    error = result.record.nodes["ask"].error or ""
    assert "'model'" in error and name in error, error


def test_a_causal_lm_folder_is_not_a_vlm(session: Session, data_dir: Path) -> None:
    folder = build_resolver().resolve("tiny/llm", data_dir).path
    result = session.run(one_node({"model": str(folder), "question": "What?"}))
    assert result.record.status == "failed"
    error = result.record.nodes["ask"].error or ""
    assert "model" in error and "could not be loaded as a vision-language model: its model failed" in error, error


def test_an_empty_linked_question_fails_at_run_time(session: Session) -> None:
    document = parse_document({
        "inputs": {"q": {"type": "text", "default": ""}},
        "nodes": {"pic": {"type": "image.load", "inputs": {"path": str(ROOT / "graphs/assets/sample.png")}},
                  "ask": {"type": "image.ask", "inputs": {"image": {"from": "pic.image"}, "model": "tiny/vlm",
                                                          "question": {"input": "q"}}}},
        "outputs": {"text": {"from": "ask.text"}}})
    result = session.run(document)
    assert result.record.status == "failed"
    assert "question" in (result.record.nodes["ask"].error or "")


def test_a_one_picture_model_refuses_a_batch(tiny_vlm: VisionLM) -> None:
    from dataclasses import replace

    single = replace(tiny_vlm, several_pictures=False)
    with pytest.raises(NodeError) as caught:
        encode(single, pictures((0, 0, 0), (9, 9, 9)), "What?")
    assert caught.value.input == "image" and "one picture at a time; the image input holds 2" in str(caught.value)


def test_the_ask_picture_graph_runs_offline(tmp_path: Path) -> None:
    session = Session(GraphEnv(Registry.discover(), GraphLibrary([ROOT / "graphs"])), None, data_dir=tmp_path)
    result = session.run(load_document(ROOT / "graphs" / "ask-picture.json"))
    assert result.record.status == "succeeded", result.record.error
    assert result.values["answer"].strip()
    assert result.values["usage"]["completion_tokens"] == 16

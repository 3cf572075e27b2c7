"""image.generate and image.transform on tiny SD, SDXL and Flux models: batches, progress, schedulers, LoRAs,
determinism across processes, model residency, and bad input named by node and input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodeforge.engine.cli import main as cli_main
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.events import Event
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session
from nodeforge.nodes.models.diffusion.pipelines import FLOW_SCHEDULERS, NOISE_SCHEDULERS
from tests.nodes.image_support import generate, image_executor, pixels, resident, run_nodes, succeeded

__all__ = ["image_executor"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("family", ["sd", "sdxl", "sd3", "flux"])
def test_generate_each_family_gives_a_batch_with_progress_per_step(image_executor: Session, family: str) -> None:
    events: list[Event] = []
    values = succeeded(run_nodes(image_executor, {"g": generate(f"tiny/{family}", steps=3, count=2)},
                                 events=events))
    image = values["g.image"]
    assert tuple(image.tensor.shape) == (2, 3, 64, 64)
    assert float(image.tensor.min()) >= 0.0 and float(image.tensor.max()) <= 1.0
    assert float(image.tensor.std()) > 0.01
    progress = [(e.data.step, e.data.total) for e in events if e.kind == "node.progress" and e.data.node == "g"]
    assert progress == [(1, 3), (2, 3), (3, 3)]


def test_same_seed_same_pixels_other_seed_other_pixels(image_executor: Session) -> None:
    first = succeeded(run_nodes(image_executor, {"g": generate(seed=11)}))["g.image"]
    again = succeeded(run_nodes(image_executor, {"g": generate(seed=11)}))["g.image"]
    other = succeeded(run_nodes(image_executor, {"g": generate(seed=12)}))["g.image"]
    assert pixels(first).equal(pixels(again))
    assert not pixels(first).equal(pixels(other))


IMAGE_TINY = ["sd", "sdxl", "sd3", "flux", "blip", "esrgan"]
SUBPROCESS_RUN = """
import hashlib, json, sys
from pathlib import Path
from nodeforge.engine.document import parse_document
from nodeforge.engine.session import Session
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.registry import Registry
from nodeforge.nodes.models import build_resolver
digests = {}
for name in json.loads(sys.argv[3]):
    folder = build_resolver().resolve("tiny/" + name, None).path
    digests[name] = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                     for p in sorted(folder.rglob("*.safetensors"))}
session = Session(GraphEnv(Registry.discover(), GraphLibrary([])), None, data_dir=Path(sys.argv[1]))
image = session.run(parse_document(json.loads(sys.argv[2]))).values["g.image"].tensor
pixels = hashlib.sha256((image.clamp(0, 1) * 255).round().byte().numpy().tobytes()).hexdigest()
print(json.dumps({"digests": digests, "pixels": pixels}))
"""


def weight_digests(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.safetensors"))}


def test_another_process_builds_the_same_tiny_models_and_draws_the_same_pixels(
        image_executor: Session, tmp_path: Path, shared_models_dir: Path) -> None:
    """The other process builds every tiny image model afresh in its own models dir; torch threads are pinned to
    one on both sides (the conftest sets OMP_NUM_THREADS), as float results depend on the thread count (P9)."""
    import hashlib

    from nodeforge.nodes.models import build_resolver

    nodes = {"g": generate("tiny/sd", seed=1234, scheduler="euler_a")}
    local = pixels(succeeded(run_nodes(image_executor, nodes))["g.image"])
    digests = {name: weight_digests(build_resolver().resolve(f"tiny/{name}", None).path) for name in IMAGE_TINY}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1",
           "NODEFORGE_MODELS_DIR": str(tmp_path / "models")}
    done = subprocess.run([sys.executable, "-c", SUBPROCESS_RUN, str(tmp_path), json.dumps({"nodes": nodes}),
                           json.dumps(IMAGE_TINY)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(digests.values()) and there["digests"] == digests
    assert there["pixels"] == hashlib.sha256(local.numpy().tobytes()).hexdigest()


@pytest.mark.parametrize("family", ["sdxl", "sd3", "flux"])
def test_transform_runs_on_each_family(image_executor: Session, family: str) -> None:
    values = succeeded(run_nodes(image_executor, {"g": generate(f"tiny/{family}"), "t": {
        "type": "image.transform", "inputs": {"image": {"from": "g.image"}, "prompt": "a cat", "steps": 2,
                                              "strength": 0.5, "model": f"tiny/{family}"}}}))
    assert tuple(values["t.image"].tensor.shape) == (1, 3, 64, 64)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_transform_and_inpaint_take_a_negative_prompt_with_guidance(image_executor: Session, family: str) -> None:
    """Their prompts go to diffusers as a list (one per input picture), so the negative prompt must be one too."""
    common = {"prompt": "a cat", "negative_prompt": "blurry", "guidance_scale": 4.0, "steps": 2,
              "model": f"tiny/{family}", "image": {"from": "g.image"}}
    values = succeeded(run_nodes(image_executor, {
        "g": generate(f"tiny/{family}", count=2),
        "t": {"type": "image.transform", "inputs": {**common, "strength": 0.5}},
        "m": {"type": "mask.from_image", "inputs": {"image": {"from": "g.image"}, "channel": "red"}},
        "i": {"type": "image.inpaint", "inputs": {**common, "mask": {"from": "m.mask"}}}}))
    assert tuple(values["t.image"].tensor.shape) == tuple(values["i.image"].tensor.shape) == (2, 3, 64, 64)


def test_second_run_loads_nothing_and_transform_shares_the_model(tmp_path: Path, shared_models_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    session = Session(GraphEnv(Registry.discover(), GraphLibrary([])), None, workers=2, data_dir=tmp_path)
    nodes = {"g": generate(), "t": {"type": "image.transform", "inputs": {
        "image": {"from": "g.image"}, "prompt": "a fox at night", "model": "tiny/sd", "steps": 4, "strength": 0.5,
        "seed": 3}}}
    first: list[Event] = []
    values = succeeded(run_nodes(session, nodes, events=first))
    loaded = [e.data.model for e in first if e.kind == "model.loaded"]
    assert loaded == [f"diffusion:tiny:{shared_models_dir / 'tiny/sd'}"]
    assert tuple(values["t.image"].tensor.shape) == (1, 3, 64, 64)
    assert [e.data.step for e in first if e.kind == "node.progress" and e.data.node == "t"] == [1, 2]
    second: list[Event] = []
    nodes["g"]["inputs"]["prompt"] = "a blue fox"
    succeeded(run_nodes(session, nodes, events=second))
    assert [e for e in second if e.kind == "model.loaded"] == []
    assert {e.data.node for e in second if e.kind == "node.finished"} == {"g", "t"}
    assert session.models.loads == 1


def test_transform_keeps_the_size_and_warns_when_it_must_round_it(image_executor: Session) -> None:
    from nodeforge.engine.values import Image
    from tests.nodes.image_support import draw_picture

    document = parse_document({
        "inputs": {"picture": {"type": "image"}, "strength": {"type": "float"}},
        "nodes": {"t": {"type": "image.transform", "inputs": {
            "image": {"input": "picture"}, "prompt": "a photo", "model": "tiny/sd", "steps": 4,
            "strength": {"input": "strength"}}}}})
    outputs = {}
    for strength in (0.25, 1.0):
        events: list[Event] = []
        source = Image.from_pil([draw_picture(64).crop((0, 0, 48, 40))])
        result = image_executor.run(document, {"picture": source, "strength": strength}, listener=events.append)
        outputs[strength] = pixels(succeeded(result)["t.image"])
        assert tuple(outputs[strength].shape) == (1, 3, 40, 48)
        assert [e for e in events if e.kind == "node.warning"] == []
    assert not outputs[0.25].equal(outputs[1.0])
    events = []
    odd = Image.from_pil([draw_picture(64).crop((0, 0, 45, 39))])
    result = image_executor.run(document, {"picture": odd, "strength": 0.5}, listener=events.append)
    assert tuple(succeeded(result)["t.image"].tensor.shape) == (1, 3, 38, 44)
    assert [e.data.text for e in events if e.kind == "node.warning"] == [
        "image resized from 45x39 to 44x38: sd models need multiples of 2"]


def test_every_scheduler_name_runs_on_its_family(image_executor: Session) -> None:
    for name in ["default", *NOISE_SCHEDULERS]:
        result = run_nodes(image_executor, {"g": generate("tiny/sd", scheduler=name, width=32, height=32)})
        assert result.record.status == "succeeded", f"{name}: {result.record.error}"
    for model in ("tiny/flux", "tiny/sd3"):
        for name in ["default", *FLOW_SCHEDULERS]:
            result = run_nodes(image_executor, {"g": generate(model, scheduler=name, width=32, height=32)})
            assert result.record.status == "succeeded", f"{model} {name}: {result.record.error}"


def test_bad_literals_are_reported_before_anything_runs(image_executor: Session) -> None:
    with pytest.raises(GraphValidationError) as info:
        run_nodes(image_executor, {
            "a": generate(width=65, scheduler="warp_drive"),
            "b": generate("tiny/flux", scheduler="ddim"),
            "c": generate("tiny/blip"),
            "d": generate(loras=[{"weight": 1}]),
            "e": {"type": "image.transform", "inputs": {"image": {"from": "a.image"}, "prompt": "x",
                                                         "model": "tiny/sd", "steps": 2, "strength": 0.2}}})
    issues = {(issue.node, issue.input): issue.message for issue in info.value.issues}
    assert issues[("a", "width")] == "width 65 is not a positive multiple of 8 (e.g. 64 or 72)"
    assert issues[("a", "scheduler")].startswith("unknown scheduler 'warp_drive'; accepted: default, euler, euler_a")
    assert issues[("b", "scheduler")] == ("scheduler 'ddim' does not work with flux models; accepted for flux: "
                                          "default, euler, lcm")
    assert issues[("c", "model")] == "model 'tiny/blip' is a blip model; this node takes sd, sdxl, flux, sd3 models"
    assert issues[("d", "loras")] == 'loras[0] needs "model": a LoRA file, folder or Hub id'
    assert issues[("e", "strength")] == "steps x strength = 2 x 0.2 runs no denoising step; raise steps or strength"


def test_size_that_the_model_cannot_take_fails_naming_node_and_input(image_executor: Session) -> None:
    result = run_nodes(image_executor, {"g": generate("tiny/sd", width=64, height={"from": "h.value"}),
                                        "h": {"type": "int.value", "inputs": {"value": 60}}})
    assert result.record.nodes["g"].error == ("node 'g' (image.generate), input 'height': height 60 is not a "
                                              "positive multiple of 8 (e.g. 56 or 64)")


def test_offline_hub_id_is_a_clear_error(image_executor: Session, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = run_nodes(image_executor, {"g": generate("nobody-here/no-such-model")})
    error = result.record.nodes["g"].error
    assert error.startswith("node 'g' (image.generate), input 'model': model 'nobody-here/no-such-model' is not in "
                            "the local Hugging Face cache and the Hub is offline")
    assert "nodeforge models get nobody-here/no-such-model" in error
    assert "diffusion:nobody-here/no-such-model" not in resident(image_executor)


def test_a_folder_that_is_no_pipeline_leaves_nothing_loaded(image_executor: Session, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    result = run_nodes(image_executor, {"g": generate(str(broken))})
    assert result.record.nodes["g"].error.startswith(
        f"node 'g' (image.generate), input 'model': model '{broken}' could not be loaded as a sd pipeline")
    assert f"diffusion:{broken}" not in resident(image_executor)
    result = run_nodes(image_executor, {"g": generate(str(tmp_path))})
    assert "is not a diffusion pipeline this node can run" in result.record.nodes["g"].error


def test_png_output_reruns_to_identical_pixels(tmp_path: Path, shared_models_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from PIL import Image as PILImage

    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    graph = tmp_path / "fox.json"
    graph.write_text(json.dumps({"schema": "nodeforge/graph@1", "inputs": {"seed": {"type": "int", "default": -1}},
                                 "nodes": {"g": generate(seed={"input": "seed"})},
                                 "outputs": {"fox": {"from": "g.image"}}}))
    data = str(tmp_path / "data")
    assert cli_main(["run", str(graph), "--out", str(tmp_path / "one"), "--data-dir", data, "--no-cache",
                     "--json"]) == 0
    first = tmp_path / "one" / "fox.png"
    assert cli_main(["run", str(first), "--out", str(tmp_path / "two"), "--data-dir", data, "--no-cache",
                     "--json"]) == 0
    with PILImage.open(first) as a, PILImage.open(tmp_path / "two" / "fox.png") as b:
        assert "nodeforge.graph" in a.text and "nodeforge.run" in a.text
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_an_inpainting_checkpoint_in_generate_or_transform_names_image_inpaint(image_executor: Session) -> None:
    """Its 9-channel UNet takes the masked picture and mask too: diffusers' text-to-image would fail on shapes."""
    result = run_nodes(image_executor, {"g": generate("tiny/sd-inpainting")}, {"image": "g.image"})
    assert result.record.status == "failed"
    error = result.record.nodes["g"].error or ""
    assert "input 'model'" in error and "is an inpainting model" in error and "image.inpaint" in error

"""Memory modes of diffusion pipelines on virtual CPU devices with small budgets: what ``auto`` picks from the
model's size and the budget, that offloaded pipelines make the same pixels, VAE tiling and slicing decided per run,
fp8 storage, the model manager's accounting, and the ``memory`` detail in the run record.

On a CPU device the offload hooks move weights from CPU RAM to CPU RAM: the same weights meet the same kernels in
the same order, so offload and sequential pixels equal gpu pixels exactly (on CUDA they save device memory, which
``bench/gpu_check.sh`` measures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.memory_modes import parse_memory_modes
from nodeforge.engine.models import ModelManager
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import RunResult, Session
from tests.nodes.image_support import generate, pixels, psnr

MB = 1 << 20
DEVICE = "cpu:0"


@pytest.fixture(scope="module")
def env(shared_models_dir: Path) -> Iterator[GraphEnv]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
        yield GraphEnv(Registry.discover(), GraphLibrary([]))


def session_on(env: GraphEnv, budget: int, mode: str = "auto") -> Session:
    """A session on one virtual device with this budget and memory mode (each loads its models afresh)."""
    manager = ModelManager({DEVICE: budget}, memory=parse_memory_modes(mode, [DEVICE]))
    return Session(env, ResultCache(None), devices=[DEVICE], workers=1, models=manager)


def run(session: Session, node: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The picture and the node's record (as JSON) of a one-node graph."""
    result: RunResult = session.run(parse_document({"nodes": {"img": node}, "outputs": {"image": {"from":
                                                                                                "img.image"}}}))
    record = result.record.to_json()["nodes"]["img"]
    assert result.record.status == "succeeded", record["error"]
    return result.values["image"], record


@pytest.fixture(scope="module")
def sizes(env: GraphEnv) -> dict[str, dict[str, Any]]:
    """Each tiny model's plan with room to spare: its total bytes, largest component and pixels in gpu mode."""
    found = {}
    for model in ("tiny/sd", "tiny/flux"):
        image, record = run(session_on(env, 1 << 30, "gpu"), generate(model))
        found[model] = {**record["details"]["memory"], "pixels": pixels(image), "image": image}
    return found


@pytest.mark.parametrize("model", ["tiny/sd", "tiny/flux"])
def test_auto_picks_gpu_offload_or_sequential_from_size_and_budget(env: GraphEnv, sizes, model: str) -> None:
    total, largest = sizes[model]["model_bytes"], sizes[model]["largest_bytes"]
    assert 0 < largest < total
    budgets = {"gpu": int(total / 0.8) + MB, "offload": int((largest + total) / 2 / 0.8),
               "sequential": int(largest / 0.8) - 1}
    for expected, budget in budgets.items():
        image, record = run(session_on(env, budget), generate(model))
        memory = record["details"]["memory"]
        assert (memory["mode"], memory["asked"], memory["budget"]) == (expected, "auto", budget)
        assert (memory["model_bytes"], memory["largest_bytes"]) == (total, largest)
        assert memory["largest_component"] == sizes[model]["largest_component"]
        assert memory["how"] == {"gpu": "to(device)", "offload": "enable_model_cpu_offload",
                                 "sequential": "enable_group_offload(leaf_level)"}[expected]
        assert memory["device_bytes"] == {"gpu": total, "offload": largest,
                                          "sequential": memory["layer_bytes"]}[expected]
        assert memory["reason"].startswith({"gpu": "the model", "offload": "the model",
                                            "sequential": "not even the largest component"}[expected])
        if not memory["vae"]["tiling"]:  # a small budget may tile the decode too (tiny/flux tiles at 32 px)
            assert gap(image, sizes[model]["image"]) <= 1e-6, f"{expected} pixels differ from gpu"


@pytest.mark.parametrize(("model", "mode", "tolerance"), [
    ("tiny/sd", "offload", 0.0), ("tiny/sd", "sequential", 0.0), ("tiny/flux", "sequential", 0.0),
    ("tiny/flux", "offload", 1e-6)])
def test_offload_and_sequential_make_the_gpu_pixels(env: GraphEnv, sizes, model: str, mode: str,
                                                    tolerance: float) -> None:
    """Exact, except Flux under model offload: its float32 output moves in the last bits (3.6e-7 measured, a
    thousandth of one 8-bit step) because accelerate's hooks run it on the device ``cpu:0`` rather than ``cpu``."""
    image, record = run(session_on(env, 1 << 30, mode), generate(model))
    assert record["details"]["memory"]["mode"] == mode
    assert record["details"]["memory"]["vae"]["tiling"] is False
    assert gap(image, sizes[model]["image"]) <= tolerance


def gap(a: Any, b: Any) -> float:
    return float((a.tensor - b.tensor).abs().max())


@pytest.mark.parametrize("mode", ["offload", "sequential"])
def test_offloaded_image_to_image_equals_gpu(env: GraphEnv, mode: str) -> None:
    """image.transform builds its pipeline over the loaded one's modules (from_pipe): hooks and all."""
    import torch

    from nodeforge.engine.values import Image

    start = Image(torch.linspace(0, 1, 3 * 64 * 64).reshape(1, 3, 64, 64))
    graph = parse_document({
        "inputs": {"start": {"type": "image"}}, "outputs": {"image": {"from": "img.image"}},
        "nodes": {"img": {"type": "image.transform", "inputs": {"prompt": "a red fox", "model": "tiny/sd", "steps": 4,
                                                                "strength": 0.5, "seed": 3,
                                                                "image": {"input": "start"}}}}})

    def transformed(session: Session, expected: str) -> Any:
        result = session.run(graph, {"start": start})
        assert result.record.status == "succeeded", result.record.error
        assert result.record.nodes["img"].details["memory"]["mode"] == expected
        return pixels(result.values["image"])

    in_mode = transformed(session_on(env, 1 << 30, mode), mode)
    assert (in_mode == transformed(session_on(env, 1 << 30, "gpu"), "gpu")).all()


def test_offloaded_pipeline_is_accounted_by_what_it_keeps_on_the_device(env: GraphEnv, sizes) -> None:
    session = session_on(env, 1 << 30, "offload")
    run(session, generate("tiny/sd"))
    ledger = session.models.devices[DEVICE]
    [entry] = ledger.resident.values()
    assert entry.nbytes == sizes["tiny/sd"]["largest_bytes"] < sizes["tiny/sd"]["model_bytes"]
    assert entry.movable is False  # its hooks are bound to this device: dropped under pressure, never parked
    gpu = session_on(env, 1 << 30, "gpu")
    run(gpu, generate("tiny/sd"))
    [whole] = gpu.models.devices[DEVICE].resident.values()
    assert whole.nbytes == sizes["tiny/sd"]["model_bytes"] and whole.movable is True


def test_large_picture_on_a_small_budget_decodes_tiled_and_says_so(env: GraphEnv, sizes) -> None:
    """128 px on tiny/sd: the decode estimate (3 maps x 128 x 128 x 64 channels x 4 bytes = 12 MiB) exceeds what a
    budget of model + 4 MiB leaves free, so the VAE tiles (its tiles are 64 px); with room, it does not."""
    budget = sizes["tiny/sd"]["model_bytes"] + 4 * MB
    session = session_on(env, budget)
    tiled, record = run(session, generate("tiny/sd", width=128, height=128))
    vae = record["details"]["memory"]["vae"]
    assert record["details"]["memory"]["mode"] == "gpu"
    assert vae == {"width": 128, "height": 128, "batch": 1, "frames": 1, "decode_bytes": 3 * 128 * 128 * 64 * 4,
                   "free": budget - sizes["tiny/sd"]["model_bytes"], "slicing": False, "tiling": True}
    [entry] = session.models.devices[DEVICE].resident.values()
    assert entry.model.pipe.vae.use_tiling is False  # switched on for that call only
    whole, roomy = run(session_on(env, 1 << 30), generate("tiny/sd", width=128, height=128))
    assert roomy["details"]["memory"]["vae"]["tiling"] is False
    assert not (pixels(tiled) == pixels(whole)).all()  # tiles blend at their seams: the decode really was tiled
    assert psnr(tiled.tensor, whole.tensor) > 20


def test_a_batch_that_does_not_fit_decodes_one_picture_at_a_time(env: GraphEnv, sizes) -> None:
    one = 3 * 64 * 64 * 64 * 4
    budget = sizes["tiny/sd"]["model_bytes"] + int(1.5 * one)
    sliced, record = run(session_on(env, budget), generate("tiny/sd", count=2))
    vae = record["details"]["memory"]["vae"]
    assert (vae["batch"], vae["decode_bytes"], vae["slicing"], vae["tiling"]) == (2, 2 * one, True, False)
    whole, roomy = run(session_on(env, 1 << 30), generate("tiny/sd", count=2))
    assert roomy["details"]["memory"]["vae"]["slicing"] is False
    assert psnr(sliced.tensor, whole.tensor) > 60  # the same decode, one picture at a time


def test_fp8_storage_shrinks_the_denoiser_and_keeps_the_picture_close(env: GraphEnv, sizes) -> None:
    image, record = run(session_on(env, 1 << 30, "gpu+fp8"), generate("tiny/sd"))
    memory = record["details"]["memory"]
    assert (memory["asked"], memory["mode"], memory["fp8"]) == ("gpu+fp8", "gpu", ["unet"])
    assert memory["model_bytes"] < sizes["tiny/sd"]["model_bytes"]  # the UNet's fp32 weights now take one byte
    assert psnr(image.tensor, sizes["tiny/sd"]["pixels"].float() / 255) > 25


def test_a_mode_given_for_another_device_leaves_this_one_on_auto(env: GraphEnv) -> None:
    modes = parse_memory_modes("cpu:1=sequential", ["cpu:0", "cpu:1"])
    assert (str(modes["cpu:0"]), str(modes["cpu:1"])) == ("auto", "sequential")


def test_video_generate_offloaded_makes_the_same_frames_and_records_its_plan(env: GraphEnv) -> None:
    node = {"type": "video.generate", "inputs": {"prompt": "a red fox running in the snow", "model": "tiny/wan",
                                                 "frames": 5, "width": 64, "height": 64, "steps": 2}}
    graph = parse_document({"nodes": {"gen": node}, "outputs": {"video": {"from": "gen.video"}}})
    frames = {}
    for mode in ("gpu", "offload"):
        result = session_on(env, 1 << 30, mode).run(graph)
        assert result.record.status == "succeeded", result.record.error
        memory = result.record.nodes["gen"].details["memory"]
        assert (memory["mode"], memory["vae"]["frames"], memory["vae"]["tiling"]) == (mode, 4, False)
        frames[mode] = result.values["video"].frames
    assert float((frames["gpu"] - frames["offload"]).abs().max()) <= 1e-6


def test_run_json_shows_what_auto_chose(tmp_path: Path, shared_models_dir: Path) -> None:
    """The README's command: on a 3 MiB virtual device tiny/sd's UNet (3.8 MiB) does not fit, so layer by layer."""
    graph = Path(__file__).resolve().parents[2] / "graphs" / "picture-scored.json"
    env = {**os.environ, "NODEFORGE_MODELS_DIR": str(shared_models_dir), "NODEFORGE_DATA_DIR": str(tmp_path / "d")}
    done = subprocess.run([sys.executable, "-m", "nodeforge.engine.cli", "run", str(graph), "--json", "--no-cache",
                           "--devices", "cpu:0", "--vram-budget", "3M", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    nodes = json.loads(done.stdout)["nodes"]
    memory = nodes["picture"]["details"]["memory"]
    assert (memory["asked"], memory["mode"], memory["budget"]) == ("auto", "sequential", 3 * MB)
    assert memory["how"] == "enable_group_offload(leaf_level)" and memory["vae"]["tiling"] is True
    assert memory["reason"] == "not even the largest component, unet (3.8 MiB), fits in 80% of the budget (3.0 MiB)"
    assert nodes["score"]["details"] == {}  # score.clip records nothing
    bad = subprocess.run([sys.executable, "-m", "nodeforge.engine.cli", "run", str(graph), "--devices", "cpu:0",
                          "--memory-mode", "cpu:1=gpu"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("nodeforge: --memory-mode names 'cpu:1', which is not in --devices (cpu:0)")


def plan(mode: str, abilities: Any, budget: int = 10 * MB) -> Any:
    from nodeforge.engine.memory_modes import DeviceMemory, parse_memory_setting
    from nodeforge.nodes.models.diffusion.memory import plan_memory

    memory = DeviceMemory("cuda:0", budget, 0, parse_memory_setting(mode))
    return plan_memory({"text_encoder": 2 * MB, "unet": 6 * MB, "vae": MB}, MB // 4, memory, abilities)


def test_a_mode_that_cannot_run_here_falls_back_and_says_why() -> None:
    from nodeforge.nodes.models.diffusion.memory import Abilities

    cuda = Abilities(model_offload=True, group_offload=True, streams=True, sequential_hooks=True)
    assert (plan("sequential", cuda).how, plan("sequential", cuda).device_bytes) == (
        "enable_group_offload(leaf_level, CUDA stream)", MB // 2)  # the running layer and the one arriving
    no_groups = Abilities(model_offload=True, group_offload=False, streams=True, sequential_hooks=True)
    assert plan("sequential", no_groups).how == "enable_sequential_cpu_offload"
    cpu_no_groups = Abilities(model_offload=True, group_offload=False, streams=False, sequential_hooks=False)
    fallback = plan("sequential", cpu_no_groups)
    assert (fallback.mode, fallback.how, fallback.device_bytes) == ("offload", "enable_model_cpu_offload", 6 * MB)
    assert fallback.reason == ("--memory-mode sequential; sequential offload is not available for this pipeline "
                               "here, so model offload instead")
    fixed = plan("offload", Abilities(model_offload=False, group_offload=False, streams=False, sequential_hooks=False))
    assert (fixed.mode, fixed.device_bytes) == ("gpu", 9 * MB)
    assert fixed.reason.endswith("this pipeline cannot offload its components, so all on the device")
    assert (plan("auto", cuda, budget=12 * MB).mode, plan("auto", cuda).mode, plan("auto", cuda, 7 * MB).mode) == (
        "gpu", "offload", "sequential")  # 9 MiB <= 80% of 12; 6 MiB <= 80% of 10; not of 7


def test_vae_decode_estimate_is_three_full_resolution_maps_of_the_widest_width() -> None:
    from nodeforge.nodes.models.diffusion.memory import vae_decode_bytes

    sdxl = (128, 256, 512, 512)  # block_out_channels of the SD and SDXL VAEs
    assert vae_decode_bytes(1024, 1024, 1, sdxl, 2) == 3 * 1024 * 1024 * 256 * 2 == 1536 * MB
    assert vae_decode_bytes(1024, 1024, 4, sdxl, 2) == 4 * 1536 * MB
    assert vae_decode_bytes(64, 64, 1, (4,), 4, frames=5) == 3 * 64 * 64 * 4 * 4 * 5

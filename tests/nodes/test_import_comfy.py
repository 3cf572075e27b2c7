"""ComfyUI workflows -> nodeforge graphs: ComfyUI's own files (API, UI and PNG chunks) and hand-written edge cases
map to the typed nodes with their values, validate, and one runs end to end on tiny/sd; what cannot map is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

import nodeforge.engine as nf
from nodeforge.engine.cli import main
from nodeforge.engine.document import parse_document
from nodeforge.nodes.importers import ImportFailed, import_comfy
from nodeforge.nodes.importers.comfy_read import read_comfy

DATA = Path(__file__).resolve().parents[1] / "data" / "comfy"
PNGS = sorted(path.name for path in DATA.glob("*.png"))


def load(name: str, **options: Any) -> dict[str, Any]:
    return import_comfy((DATA / name).read_bytes(), **options).document


def png_chunks(name: str) -> dict[str, str]:
    with PILImage.open(DATA / name) as picture:
        return {key: value for key, value in picture.info.items() if isinstance(value, str)}


def by_type(document: dict[str, Any], type_id: str) -> dict[str, Any]:
    found = [node for node in document["nodes"].values() if node["type"] == type_id]
    assert len(found) == 1, (type_id, document["nodes"])
    return found[0]["inputs"]


def defaults(document: dict[str, Any]) -> dict[str, Any]:
    return {name: decl["default"] for name, decl in document["inputs"].items()}


def test_the_default_api_workflow_becomes_a_reusable_generate_and_save() -> None:
    document = load("default_api.json")
    assert {node_id: node["type"] for node_id, node in document["nodes"].items()} == {
        "generate_3": "image.generate", "save_9": "image.save"}
    assert defaults(document) == {"prompt": "masterpiece best quality girl", "negative_prompt": "bad hands",
                                  "model": "v1-5-pruned-emaonly.safetensors", "steps": 20, "seed": 8566257,
                                  "width": 512, "height": 512}
    generate = document["nodes"]["generate_3"]["inputs"]
    assert generate == {"prompt": {"input": "prompt"}, "negative_prompt": {"input": "negative_prompt"},
                        "model": {"input": "model"}, "steps": {"input": "steps"}, "guidance_scale": 8.0,
                        "seed": {"input": "seed"}, "sampler": "euler", "sigma_schedule": "normal",
                        "width": {"input": "width"},
                        "height": {"input": "height"}}
    assert document["nodes"]["save_9"]["inputs"] == {"image": {"from": "generate_3.image"}, "name": "ComfyUI"}
    assert document["outputs"] == {"image": {"from": "generate_3.image"}}


def test_the_editors_default_workflow_keeps_values_and_positions() -> None:
    document = load("default_ui.json")
    generate = by_type(document, "image.generate")
    assert defaults(document)["seed"] == 156680208700286  # the control_after_generate flag after it is skipped
    assert defaults(document)["model"] == "v1-5-pruned-emaonly-fp16.safetensors"
    assert generate["guidance_scale"] == 8.0
    assert (generate["sampler"], generate["sigma_schedule"]) == ("euler", "normal")
    assert document["ui"]["positions"] == {"generate_3": [863, 186], "save_9": [1451, 189]}


@pytest.mark.parametrize("name", PNGS)
def test_a_pngs_ui_chunk_alone_maps_like_its_api_chunk(name: str) -> None:
    """The UI format names widgets by position only: the widget tables must read them as ComfyUI's API does."""
    chunks = png_chunks(name)
    from_api = import_comfy(json.loads(chunks["prompt"])).document
    from_ui = import_comfy(json.loads(chunks["workflow"])).document
    assert from_ui["nodes"] == from_api["nodes"]
    assert from_ui["inputs"] == from_api["inputs"]
    assert list(from_ui["outputs"].items()) == list(from_api["outputs"].items())
    assert from_ui["ui"]["positions"] == load(name)["ui"]["positions"]


def test_the_outputs_follow_the_save_nodes_not_the_order_a_format_lists_them() -> None:
    """ComfyUI writes the API chunk in execution order and the UI chunk in editor order: the graph is the same."""
    chunks = png_chunks("hiresfix_esrgan_workflow.png")
    api = json.loads(chunks["prompt"])
    ui = json.loads(chunks["workflow"])
    backwards_api = dict(reversed(list(api.items())))
    backwards_ui = {**ui, "nodes": list(reversed(ui["nodes"]))}
    expected = list(import_comfy(api).document["outputs"].items())
    assert len(expected) == 2
    assert list(import_comfy(backwards_api).document["outputs"].items()) == expected
    assert list(import_comfy(backwards_ui).document["outputs"].items()) == expected


@pytest.mark.parametrize("name", [*PNGS, "default_api.json", "default_ui.json", "sdxl_refiner_api.json",
                                  "edge_cases_ui.json"])
def test_every_kept_workflow_validates(name: str) -> None:
    document = parse_document(load(name))
    assert nf.validate(document) == []


def test_a_lora_chain_becomes_loras_in_chain_order() -> None:
    document = load("lora_multiple.png")
    assert by_type(document, "image.generate")["loras"] == {"input": "loras"}
    assert defaults(document)["loras"] == [{"model": "theovercomer8sContrastFix_sd15.safetensors", "weight": 1.0},
                                           {"model": "epiNoiseoffset_v2.safetensors", "weight": 1.0}]
    assert document["inputs"]["loras"]["type"] == "json"


def test_sdxl_base_and_refiner_become_generate_then_transform() -> None:
    result = import_comfy((DATA / "sdxl_refiner_api.json").read_bytes())
    document = result.document
    base, refiner = document["nodes"]["generate_10"]["inputs"], document["nodes"]["transform_14"]["inputs"]
    assert defaults(document)["model"] == "sd_xl_base_1.0.safetensors"
    assert defaults(document)["model_2"] == "sd_xl_refiner_1.0.safetensors"
    assert base["model"] == {"input": "model"} and refiner["model"] == {"input": "model_2"}
    assert "negative_prompt" not in base  # ConditioningZeroOut: an empty negative
    assert refiner["image"] == {"from": "generate_10.image"}
    assert refiner["strength"] == 0.2  # starts at step 32 of 40
    assert refiner["prompt"] == {"input": "prompt"} and refiner["seed"] == {"input": "seed"}
    assert base["guidance_scale"] == 7.5 and defaults(document)["steps"] == 40
    assert refiner["steps"] == {"input": "steps_2"} and defaults(document)["steps_2"] == 40  # its own
    assert document["nodes"]["save_13"]["inputs"]["name"] == "ref_ComfyUI"
    assert any("ends at step 32 of 40" in warning for warning in result.warnings)


def test_a_refiner_that_starts_after_the_last_step_passes_the_picture_on() -> None:
    result = import_comfy((DATA / "sdxl_refiner_20_steps_api.json").read_bytes())
    assert [node["type"] for node in result.document["nodes"].values()] == ["image.generate", "image.save"]
    assert any("node 14 (KSamplerAdvanced): starts at step 32 of 20" in warning for warning in result.warnings)


def test_the_flux_workflow_maps_guidance_and_says_how_to_assemble_its_files() -> None:
    result = import_comfy((DATA / "flux_dev_example.png").read_bytes())
    generate = by_type(result.document, "image.generate")
    assert generate["guidance_scale"] == 3.5
    assert (generate["sampler"], generate["sigma_schedule"]) == ("euler", "simple")
    assert defaults(result.document)["model"] == "flux1-dev.safetensors"
    assert defaults(result.document)["width"] == 1024  # from the PrimitiveNode feeding the latent's width
    [advice] = [warning for warning in result.warnings if "UNETLoader" in warning]
    assert 'text_encoder_2 = "t5xxl_fp16.safetensors"' in advice and 'vae = "ae.safetensors"' in advice


def test_the_flux_workflows_files_reach_the_graph_and_what_cannot_is_named() -> None:
    """The VAELoader's file is the diffusion node's vae input (a graph input, so --set vae= clears it); the
    DualCLIPLoader's files, which image.generate has no input for, are named with the alias that assembles them,
    in the warning and in the model input's description, so the graph carries them too."""
    result = import_comfy((DATA / "flux_dev_example.png").read_bytes())
    generate = by_type(result.document, "image.generate")
    assert generate["vae"] == {"input": "vae"} and defaults(result.document)["vae"] == "ae.safetensors"
    [advice] = [warning for warning in result.warnings if "UNETLoader" in warning]
    assert "its VAE ae.safetensors is the graph's vae input" in advice
    assert "image.generate takes no text encoder files" in advice
    alias = ('[aliases.my-model] family = "flux", transformer = "flux1-dev.safetensors", '
             'text_encoder = "clip_l.safetensors", text_encoder_2 = "t5xxl_fp16.safetensors", vae = "ae.safetensors"')
    assert alias in advice and alias in result.document["inputs"]["model"]["description"]
    assert nf.validate(parse_document(result.document)) == []


def test_a_checkpoints_separate_vae_and_text_encoder_files() -> None:
    workflow = json.loads((DATA / "default_api.json").read_text())
    workflow["10"] = {"class_type": "VAELoader", "inputs": {"vae_name": "vae-ft-mse.safetensors"}}
    workflow["11"] = {"class_type": "CLIPLoader", "inputs": {"clip_name": "clip_l.safetensors", "type": "sd"}}
    workflow["8"]["inputs"]["vae"] = ["10", 0]
    for encoder in ("6", "7"):
        workflow[encoder]["inputs"]["clip"] = ["11", 0]
    result = import_comfy(workflow)
    assert result.document["nodes"]["generate_3"]["inputs"]["vae"] == {"input": "vae"}
    assert defaults(result.document)["vae"] == "vae-ft-mse.safetensors"
    assert result.warnings == [
        "node 8 (VAEDecode): the text encoder file(s) clip_l.safetensors are not used: image.generate takes no "
        "text encoder input, so the model's own encoders are; an alias in models.toml can name them "
        '(text_encoder = ..., with model = "v1-5-pruned-emaonly.safetensors")']


def test_inpaint_outpaint_controlnet_upscale_and_hires_fix() -> None:
    inpaint = load("inpaint_example.png")
    assert by_type(inpaint, "mask.from_image") == {"image": {"from": "load_20.image"}, "channel": "alpha"}
    assert by_type(inpaint, "mask.grow") == {"mask": {"from": "mask_20.mask"}, "pixels": 6}
    painted = by_type(inpaint, "image.inpaint")
    assert painted["image"] == {"from": "load_20.image"} and painted["mask"] == {"from": "grow_26.mask"}
    outpaint = load("yosemite_outpaint_example.png")
    assert by_type(outpaint, "image.pad") == {"image": {"from": "load_20.image"}, "left": 0, "top": 128,
                                              "right": 0, "bottom": 128, "feather": 40}
    control = load("controlnet_example.png")
    assert by_type(control, "image.controlnet") == {"image": {"from": "load_11.image"},
                                                    "model": {"input": "controlnet"}, "weight": 0.9}
    assert defaults(control)["controlnet"] == "control_scribble.safetensors"
    assert by_type(control, "image.load") == {"path": {"input": "image"}}
    assert defaults(control)["image"] == "input_scribble_example.png"
    assert by_type(control, "image.generate")["controls"] == [{"from": "controlnet_10.control"}]
    esrgan = load("esrgan_example.png")
    assert by_type(esrgan, "image.upscale")["model"] == {"input": "upscaler"}
    assert defaults(esrgan)["upscaler"] == "RealESRGAN_x2.pth"
    hires = load("hiresfix_esrgan_workflow.png")
    assert by_type(hires, "image.resize") == {"image": {"from": "upscale_22.image"}, "filter": "bilinear",
                                              "width": 1536, "height": 1536, "mode": "stretch"}
    second = by_type(hires, "image.transform")
    assert second["image"] == {"from": "resize_24.image"} and second["strength"] == 0.5
    assert second["seed"] == 783745448521451 and second["steps"] == 14  # differ from the first pass: literals
    assert hires["outputs"] == {"image": {"from": "generate_3.image"}, "image_2": {"from": "transform_11.image"}}
    assert by_type(load("img2img_workflow.png"), "image.transform")["strength"] == 0.87


def test_reroutes_primitives_bypassed_and_muted_nodes_resolve() -> None:
    result = import_comfy((DATA / "edge_cases_ui.json").read_bytes())
    document = result.document
    assert set(document["nodes"]) == {"generate_7", "save_15"}  # the muted custom node is not run by ComfyUI
    generate = document["nodes"]["generate_7"]["inputs"]
    assert defaults(document)["prompt"] == "a lighthouse at dusk, oil painting"  # the primitive wins over widgets
    assert defaults(document)["seed"] == 1234
    assert generate["loras"] == {"input": "loras"}
    assert defaults(document)["loras"] == [{"model": "add_detail.safetensors", "weight": 0.8},
                                           {"model": "film_grain.safetensors", "weight": 0.5}]
    assert (generate["sampler"], generate["sigma_schedule"], generate["count"]) == ("euler_ancestral", "karras", 2)
    assert document["nodes"]["save_15"]["inputs"] == {"image": {"from": "generate_7.image"}, "name": "cases"}
    assert document["outputs"] == {"image": {"from": "generate_7.image"}, "preview": {"from": "generate_7.image"}}
    assert document["ui"]["groups"] == [{"title": "Prompt", "bounding": [780, 180, 720, 700], "color": "#3f789e"}]
    assert result.warnings == [
        "node 3 (LoraLoader): one weight per LoRA in nodeforge: strength_model 0.5 is used, strength_clip 1.0 is "
        "not"]  # euler_ancestral + karras is ComfyUI's own sampler here: nothing to warn about


def with_custom_node() -> dict[str, Any]:
    workflow = json.loads((DATA / "default_api.json").read_text())
    workflow["10"] = {"class_type": "UltimateSDUpscale", "inputs": {"image": ["8", 0], "upscale_by": 2}}
    workflow["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "big"}}
    workflow["12"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    return workflow


def test_a_node_that_cannot_map_fails_the_import_by_id_and_class() -> None:
    with pytest.raises(ImportFailed) as failed:
        import_comfy((DATA / "upscale_custom_node_api.json").read_bytes())
    assert [item.to_dict() for item in failed.value.unmapped] == [
        {"id": "17", "class_type": "ImageRequestParameter", "reason": "no nodeforge equivalent"}]
    with pytest.raises(ImportFailed, match=r"node 10 \(UltimateSDUpscale\)"):
        import_comfy(with_custom_node())


def test_partial_keeps_what_maps_and_the_picture_that_fed_the_rest() -> None:
    result = import_comfy(with_custom_node(), partial=True)
    assert set(result.document["nodes"]) == {"generate_3", "save_9"}
    assert result.document["outputs"] == {"image": {"from": "generate_3.image"},
                                          "preview": {"from": "generate_3.image"},
                                          "image_for_10": {"from": "generate_3.image"}}
    assert [str(item) for item in result.unmapped] == [
        "node 10 (UltimateSDUpscale): no nodeforge equivalent",
        "node 11 (SaveImage): left out: it depends on node 10"]


def png_with(chunks: dict[str, str]) -> bytes:
    import io

    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def webp_with(entries: dict[int, str]) -> bytes:
    """A WebP with EXIF entries, as ComfyUI's SaveAnimatedWEBP writes them (``prompt:...`` under 0x0110,
    ``workflow:...`` under 0x010F)."""
    import io

    exif = PILImage.Exif()
    for tag, value in entries.items():
        exif[tag] = value
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(buffer, format="WEBP", exif=exif)
    return buffer.getvalue()


def test_a_webp_comfyui_saved_maps_like_its_json() -> None:
    api, ui = (json.loads((DATA / name).read_text()) for name in ("default_api.json", "default_ui.json"))
    both = import_comfy(webp_with({0x0110: "prompt:" + json.dumps(api), 0x010F: "workflow:" + json.dumps(ui)}),
                        name="default")
    assert both.source == "comfy-webp+ui"
    from_json = import_comfy(json.dumps(api).encode(), name="default").document
    assert both.document["nodes"] == from_json["nodes"] and both.document["inputs"] == from_json["inputs"]
    assert both.document["outputs"] == from_json["outputs"]
    ui_only = import_comfy(webp_with({0x010F: "workflow:" + json.dumps(ui)}), name="default")
    assert ui_only.document["nodes"].keys() == both.document["nodes"].keys()


def test_a_webp_entry_over_its_limit_is_refused_by_name() -> None:
    from nodeforge.nodes.importers.webp_exif import webp_texts

    with pytest.raises(ImportFailed, match="the WebP's 'prompt' entry is longer than 10 characters"):
        webp_texts(webp_with({0x0110: "prompt:" + "x" * 100}), {"prompt": 10})
    assert webp_texts(webp_with({0x0110: "prompt:{}", 0x010F: "other:1"}), {"prompt": 10}).keywords == {
        "prompt", "other"}


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "plain.webp": (webp_with({0x0131: "GIMP"}), "this WebP carries no ComfyUI workflow (no 'prompt' or 'workflow' "
                                                 "EXIF entry; found: none)"),
    "truncated.webp": (webp_with({0x0110: "prompt:{}"})[:40], "the WebP is truncated"),
    "photo.jpg": (b"\xff\xd8\xff\xe0" + bytes(64), "the file is a JPEG picture: ComfyUI workflows come as JSON, "
                                                       "or inside the PNG or WebP pictures ComfyUI saves"),
    "not_json.json": (b"{not json", "neither a PNG nor JSON"),
    "list.json": (b"[1, 2]", "the JSON is not an object"),
    "plain.png": (png_with({"Software": "GIMP"}), "no ComfyUI workflow (no 'prompt' or 'workflow' text chunk; "
                                                  "found: Software)"),
    "cycle.json": (json.dumps({"1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
                               "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}}).encode(),
                   "the workflow has a cycle: 1 (ImageInvert) -> 2 (ImageInvert) -> 1 (ImageInvert)"),
    "dangling.json": (json.dumps({"9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}}}).encode(),
                      "node 9 (SaveImage) input 'images' is linked to node 8, which is not in the workflow"),
    "dangling_ui.json": (json.dumps({"nodes": [{"id": 9, "type": "SaveImage", "inputs": [
        {"name": "images", "type": "IMAGE", "link": 5}]}], "links": []}).encode(),
        "node 9 (SaveImage) input 'images' uses link 5, which is not in the workflow's links"),
    "nodeforge.json": (b'{"schema": "nodeforge/graph@1", "nodes": {}}', "already a nodeforge graph"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_give_one_clear_error_and_exit_2(name: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data, reason = BAD_FILES[name]
    (tmp_path / name).write_bytes(data)
    assert main(["import", "comfy", str(tmp_path / name), "-o", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert reason in err and "Traceback" not in err
    assert not (tmp_path / "out.json").exists()


def test_the_cli_lists_unmapped_nodes_and_partial_writes_the_rest(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "custom.json"
    source.write_text(json.dumps(with_custom_node()))
    assert main(["import", "comfy", str(source)]) == 2
    err = capsys.readouterr().err
    assert "1 node(s) cannot be mapped" in err and "node 10 (UltimateSDUpscale): no nodeforge equivalent" in err
    assert not (tmp_path / "custom.nodeforge.json").exists()
    assert main(["import", "comfy", str(source), "--partial", "-o", str(tmp_path / "kept.json")]) == 0
    out = capsys.readouterr().out
    assert "left out: node 10 (UltimateSDUpscale)" in out
    assert set(json.loads((tmp_path / "kept.json").read_text())["nodes"]) == {"generate_3", "save_9"}


def test_read_comfy_follows_the_queued_prompt_wrapper() -> None:
    wrapped = {"prompt": json.loads((DATA / "default_api.json").read_text()), "client_id": "x"}
    assert set(read_comfy(wrapped).nodes) == {"3", "4", "5", "6", "7", "8", "9"}


def test_an_imported_workflow_runs_on_tiny_sd(tmp_path: Path, shared_models_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    """The README's commands: import ComfyUI's default workflow, run it on tiny/sd, small and short."""
    graph = tmp_path / "mine.json"
    assert main(["import", "comfy", str(DATA / "default_api.json"), "-o", str(graph)]) == 0
    capsys.readouterr()
    code = main(["run", str(graph), "--set", "model=tiny/sd", "--set", "width=64", "--set", "height=64",
                 "--set", "steps=2", "--json", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    record = json.loads(capsys.readouterr().out)
    assert code == 0, record.get("error")
    assert record["status"] == "succeeded" and record["inputs"]["seed"] == 8566257
    assert record["inputs"]["prompt"] == "masterpiece best quality girl"
    [saved] = (tmp_path / "data" / "outputs").glob("ComfyUI_*.png")
    with PILImage.open(saved) as picture, PILImage.open(record["outputs"]["image"]["path"]) as output:
        assert picture.size == (64, 64) and output.size == (64, 64)

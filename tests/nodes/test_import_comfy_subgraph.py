"""ComfyUI subgraphs (``definitions.subgraphs``, instances typed by the subgraph's UUID) import as their inner nodes:
inputs linked from outside or given as the instance's widget values, promoted widget values, outputs read outside,
nesting; a subgraph that contains itself is one clear error. The workflows are written here in the layout ComfyUI's
editor (frontend 1.2x-1.3x) saves, as in Comfy-Org's workflow templates."""

from __future__ import annotations

from typing import Any

import pytest

import nodeforge.engine as nf
from nodeforge.engine.document import parse_document
from nodeforge.nodes.importers import ImportFailed, import_comfy

SAMPLER_ID = "5b0c1f8e-0000-4000-8000-000000000001"
OUTER_ID = "5b0c1f8e-0000-4000-8000-000000000002"


def node(node_id: int | str, kind: str, widgets: list[Any], inputs: list[dict[str, Any]] | None = None,
         **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": kind, "pos": [0, 0], "mode": 0, "inputs": inputs or [],
            "widgets_values": widgets, **extra}


def slot(name: str, kind: str, link: int | None, widget: bool = False) -> dict[str, Any]:
    return {"name": name, "type": kind, "link": link, **({"widget": {"name": name}} if widget else {})}


def link(link_id: int, origin: int, origin_slot: int, target: int, target_slot: int, kind: str) -> dict[str, Any]:
    return {"id": link_id, "origin_id": origin, "origin_slot": origin_slot, "target_id": target,
            "target_slot": target_slot, "type": kind}


def sampler_subgraph() -> dict[str, Any]:
    """Prompt -> KSampler -> VAEDecode inside; MODEL, CLIP, VAE and the seed come in; the picture goes out."""
    return {
        "id": SAMPLER_ID, "name": "Text to image", "inputNode": {"id": -10}, "outputNode": {"id": -20},
        "inputs": [{"name": "model", "type": "MODEL", "linkIds": [1]}, {"name": "clip", "type": "CLIP",
                                                                           "linkIds": [2, 3]},
                   {"name": "vae", "type": "VAE", "linkIds": [4]}, {"name": "seed", "type": "INT", "linkIds": [5]}],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "linkIds": [9]}],
        "nodes": [
            node(6, "CLIPTextEncode", ["a lighthouse"], [slot("clip", "CLIP", 2)]),
            node(7, "CLIPTextEncode", ["blurry"], [slot("clip", "CLIP", 3)]),
            node(5, "EmptyLatentImage", [512, 512, 1]),
            node(3, "KSampler", [1, "randomize", 20, 7.0, "euler", "normal", 1.0],
                 [slot("model", "MODEL", 1), slot("positive", "CONDITIONING", 6),
                  slot("negative", "CONDITIONING", 7), slot("latent_image", "LATENT", 8),
                  slot("seed", "INT", 5, widget=True)]),
            node(8, "VAEDecode", [], [slot("samples", "LATENT", 10), slot("vae", "VAE", 4)]),
        ],
        "links": [link(1, -10, 0, 3, 0, "MODEL"), link(2, -10, 1, 6, 0, "CLIP"), link(3, -10, 1, 7, 0, "CLIP"),
                  link(4, -10, 2, 8, 1, "VAE"), link(5, -10, 3, 3, 4, "INT"),
                  link(6, 6, 0, 3, 1, "CONDITIONING"), link(7, 7, 0, 3, 2, "CONDITIONING"),
                  link(8, 5, 0, 3, 3, "LATENT"), link(10, 3, 0, 8, 0, "LATENT"), link(9, 8, 0, -20, 0, "IMAGE")],
    }


def workflow(instance_widgets: list[Any], proxies: list[list[str]] | None = None) -> dict[str, Any]:
    """A checkpoint loader outside feeding one instance (id 20) of the sampler subgraph, saved outside."""
    properties = {"proxyWidgets": proxies} if proxies is not None else {}
    return {
        "nodes": [
            node(4, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"]),
            node(20, SAMPLER_ID, instance_widgets,
                 [slot("model", "MODEL", 31), slot("clip", "CLIP", 32), slot("vae", "VAE", 33),
                  slot("seed", "INT", None, widget=True)], properties=properties),
            node(9, "SaveImage", ["lighthouse"], [slot("images", "IMAGE", 34)]),
        ],
        "links": [[31, 4, 0, 20, 0, "MODEL"], [32, 4, 1, 20, 1, "CLIP"], [33, 4, 2, 20, 2, "VAE"],
                  [34, 20, 0, 9, 0, "IMAGE"]],
        "definitions": {"subgraphs": [sampler_subgraph()]},
    }


def test_an_instance_becomes_its_inner_nodes_wired_to_the_outside() -> None:
    document = import_comfy(workflow([4242])).document
    assert {node_id: node["type"] for node_id, node in document["nodes"].items()} == {
        "generate_20_3": "image.generate", "save_9": "image.save"}
    assert {name: decl["default"] for name, decl in document["inputs"].items()} == {
        "prompt": "a lighthouse", "negative_prompt": "blurry", "model": "dreamshaper_8.safetensors", "steps": 20,
        "seed": 4242, "width": 512, "height": 512}
    assert document["outputs"] == {"image": {"from": "generate_20_3.image"}}
    assert nf.validate(parse_document(document)) == []


def test_promoted_widget_values_override_the_inner_ones() -> None:
    """The current editor keeps inner values on the inner nodes and shows some on the instance (proxyWidgets);
    ``-1`` promotes a subgraph input's widget."""
    found = import_comfy(workflow(["a red barn", 768, 99], [["6", "text"], ["5", "width"], ["-1", "seed"]]))
    defaults = {name: decl["default"] for name, decl in found.document["inputs"].items()}
    assert defaults["prompt"] == "a red barn" and defaults["width"] == 768 and defaults["seed"] == 99
    assert defaults["height"] == 512


def test_without_a_value_for_a_widget_input_the_inner_widget_keeps_its_own() -> None:
    defaults = import_comfy(workflow([])).document["inputs"]
    assert defaults["seed"]["default"] == 1


def test_nested_subgraphs_expand_and_unmapped_inner_nodes_are_named_by_their_path() -> None:
    data = workflow([7])
    outer = {"id": OUTER_ID, "name": "Wrapper", "inputNode": {"id": -10}, "outputNode": {"id": -20},
             "inputs": [{"name": "model", "type": "MODEL"}, {"name": "clip", "type": "CLIP"},
                        {"name": "vae", "type": "VAE"}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
             "nodes": [node(1, SAMPLER_ID, [7], [slot("model", "MODEL", 1), slot("clip", "CLIP", 2),
                                                 slot("vae", "VAE", 3), slot("seed", "INT", None, widget=True)]),
                       node(2, "ImageInvert", [], [slot("image", "IMAGE", 4)], mode=2)],
             "links": [link(1, -10, 0, 1, 0, "MODEL"), link(2, -10, 1, 1, 1, "CLIP"), link(3, -10, 2, 1, 2, "VAE"),
                       link(4, 1, 0, 2, 0, "IMAGE"), link(5, 1, 0, -20, 0, "IMAGE")]}
    data["definitions"]["subgraphs"].append(outer)
    data["nodes"][1]["type"] = OUTER_ID
    data["nodes"][1]["widgets_values"] = []
    document = import_comfy(data).document
    assert [node["type"] for node in document["nodes"].values()] == ["image.generate", "image.save"]
    assert "generate_20_1_3" in document["nodes"] and document["inputs"]["seed"]["default"] == 7
    outer["nodes"][1]["mode"] = 0
    outer["links"][4] = link(5, 2, 0, -20, 0, "IMAGE")
    with pytest.raises(ImportFailed) as failed:
        import_comfy(data)
    assert [(item.id, item.class_type) for item in failed.value.unmapped] == [("20:2", "ImageInvert")]


def test_a_subgraph_that_contains_itself_is_refused() -> None:
    data = workflow([1])
    data["definitions"]["subgraphs"][0]["nodes"].append(node(11, SAMPLER_ID, []))
    with pytest.raises(ImportFailed, match="nests more than 16 subgraphs deep"):
        import_comfy(data)


def test_an_instance_of_a_missing_subgraph_or_a_legacy_group_node_says_what_it_is() -> None:
    data = workflow([1])
    data["definitions"] = {"subgraphs": []}
    with pytest.raises(ImportFailed, match=f"node 20 \\({SAMPLER_ID}\\): a subgraph whose definition is not in "):
        import_comfy(data)
    data["nodes"][1]["type"] = "workflow>IP2PSampler"
    with pytest.raises(ImportFailed, match=r"node 20 \(workflow>IP2PSampler\): a group node \(the editor's older "):
        import_comfy(data)

"""Input declarations (``engine.declarations``) against the real catalogue: a node that declares a model input and
writes no ``check`` gets the built-in nodes' validation, seeds work under any name, remote names are allowed only
where the kind says so, a node whose model is remote needs no device, and the catalogue carries the widgets."""

from __future__ import annotations

from typing import Any

import pytest

from nodeforge.engine.authoring import ModelInput, ModelKind, Node, NodeContext, NodeInputs, NodeOutputs, SeedInput
from nodeforge.engine.compiler import GraphEnv, compile_graph, validate
from nodeforge.engine.document import parse_document
from nodeforge.engine.prepare import prepare
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session, reproducible_document
from nodeforge.nodes.caption import CAPTIONER


class Echo(NodeOutputs):
    text: str
    seed: int


class Describe(Node):
    """A node that names a captioner and writes no check of its own."""

    type_id = "decl.describe"
    version = "1.0.0"

    class Inputs(NodeInputs):
        model: str = ModelInput("blip-base", kind=CAPTIONER)
        noise_seed: int = SeedInput(-1)

    Outputs = Echo

    def run(self, inputs: Inputs, ctx: NodeContext) -> Echo:
        return Echo(text=inputs.model, seed=inputs.noise_seed)


class Remote(Node):
    """An accelerator node whose model may be a remote one."""

    type_id = "decl.remote"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        model: str = ModelInput("tiny/llm", kind=ModelKind("llm", ("llm",), remote=True))

    class Outputs(NodeOutputs):
        text: str

    def run(self, inputs: Inputs, ctx: NodeContext) -> Any:
        return self.Outputs(text=ctx.models.remote(inputs.model) or "local")


@pytest.fixture
def declared_env(env: GraphEnv) -> GraphEnv:
    env.registry.add(Describe, "test")
    env.registry.add(Remote, "test")
    return env


def one(node_type: str, inputs: dict[str, Any]) -> Any:
    return parse_document({"nodes": {"n": {"type": node_type, "inputs": inputs}}})


def test_a_declared_model_input_is_checked_like_the_built_in_nodes(declared_env: GraphEnv) -> None:
    mine = validate(one("decl.describe", {"model": "tiny/sd"}), declared_env)
    built_in = validate(one("image.caption", {"image": {"input": "picture"}, "model": "tiny/sd"}), declared_env)
    assert [(i.input, i.code, i.message) for i in mine] == [("model", "invalid_input",
                                                              "model 'tiny/sd' is a sd model; this node takes blip "
                                                              "models")]
    assert [(i.code, i.message) for i in mine] == [(i.code, i.message) for i in built_in if i.input == "model"]
    assert validate(one("decl.describe", {"model": "tiny/blip"}), declared_env) == []


def test_a_remote_name_is_refused_where_the_kind_takes_local_models_only(declared_env: GraphEnv) -> None:
    issues = validate(one("decl.describe", {"model": "openai:gpt-4o"}), declared_env)
    assert [(i.input, i.message) for i in issues] == [
        ("model", "model 'openai:gpt-4o' names a remote server; this input loads local models only")]
    assert validate(one("decl.remote", {"model": "openai:gpt-4o"}), declared_env) == []
    empty = validate(one("decl.remote", {"model": "openai:"}), declared_env)
    assert [i.message for i in empty] == ["'openai:' names no remote model: it needs a model name after the colon"]


def test_a_seed_under_any_name_is_drawn_recorded_and_written_back(declared_env: GraphEnv, session: Session) -> None:
    document = one("decl.describe", {"model": "tiny/blip"})
    document = parse_document({**document.to_json(), "outputs": {"seed": {"from": "n.seed"}}})
    first, second = session.run(document), session.run(document)
    drawn = first.values["seed"]
    assert drawn >= 0 and first.record.seeds == {"n": drawn}
    assert second.values["seed"] != drawn, "-1 draws a new seed each run"
    written = reproducible_document(compile_graph(document, declared_env), first.record)
    assert written["nodes"]["n"]["inputs"]["noise_seed"] == drawn and "seed" not in written["nodes"]["n"]["inputs"]


def test_a_node_whose_model_is_remote_needs_no_device(declared_env: GraphEnv) -> None:
    graph = compile_graph(parse_document({"nodes": {
        "remote": {"type": "decl.remote", "inputs": {"model": "openai:gpt-4o"}},
        "local": {"type": "decl.remote", "inputs": {"model": "tiny/llm"}},
        "picture": {"type": "image.generate", "inputs": {"prompt": "x", "model": "openai:dall-e-3"}},
        "drawn": {"type": "image.generate", "inputs": {"prompt": "x", "model": "tiny/sd"}}}}), declared_env)
    prepared = prepare(graph, {}, declared_env, {})
    assert {node: p.accelerated for node, p in prepared.items()} == {
        "remote": False, "local": True, "picture": False, "drawn": True}
    assert prepared["remote"].models == [] and prepared["drawn"].models == ["tiny/sd"]


def test_the_catalogue_carries_each_declared_widget(registry: Registry) -> None:
    def widgets(node_type: str) -> dict[str, str]:
        properties = registry.get(node_type).catalogue_entry()["inputs"]["properties"]
        return {name: schema["x-nodeforge-widget"] for name, schema in properties.items()
                if "x-nodeforge-widget" in schema}

    assert widgets("image.generate") == {"prompt": "multiline", "model": "model", "seed": "seed", "loras": "loras",
                                         "controls": "model", "vae": "model"}
    assert widgets("graph.call") == {"graph": "graph"}
    assert widgets("image.load") == {"path": "file"} and widgets("image.save")["folder"] == "folder"
    speech = registry.get("audio.speech").catalogue_entry()["inputs"]["properties"]["model"]
    assert speech["x-nodeforge-model-names"] == ["espeak"] and speech["x-nodeforge-remote"] is True
    assert registry.get("image.generate").files == {"model": "model", "loras": "model", "controls": "model",
                                                    "vae": "model"}

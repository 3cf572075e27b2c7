"""``engine.files``: the path policy an ``Session`` applies to every file a node opens, and its absence (the CLI on
one's own graphs); ``engine.limits``: the default pixel budget that holds for every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError, NodeError
from nodeforge.engine.files import FileAccess, FilePolicy
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session
from tests.server.test_media_limits import png_header


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    readable, writable, outside = tmp_path / "read", tmp_path / "write", tmp_path / "outside"
    for folder in (readable, writable, outside):
        folder.mkdir()
    (readable / "in.txt").write_text("x")
    (outside / "secret.txt").write_text("x")
    return readable, writable, outside


def test_without_a_policy_paths_mean_what_they_mean_in_a_shell(folders: tuple[Path, Path, Path],
                                                               tmp_path: Path) -> None:
    _, _, outside = folders
    access = FileAccess(data_dir=tmp_path / "data")
    assert access.read(str(outside / "secret.txt"), input="path") == outside / "secret.txt"
    assert access.model(str(outside), input="model") == str(outside)
    assert access.write_folder(str(outside / "new"), input="folder") == outside / "new"


def test_a_policy_reads_writes_and_loads_only_inside_its_folders(folders: tuple[Path, Path, Path],
                                                                 tmp_path: Path) -> None:
    readable, writable, outside = folders
    outputs = tmp_path / "data" / "outputs"
    access = FileAccess(FilePolicy(read=(readable,), write=(writable, outputs)), data_dir=tmp_path / "data")
    assert access.read("in.txt", input="path") == readable / "in.txt"
    with pytest.raises(NodeError) as existing:
        access.read(str(outside / "secret.txt"), input="path")
    with pytest.raises(NodeError) as missing:
        access.read(str(outside / "nothing.txt"), input="path")
    assert str(existing.value).replace("secret", "X") == str(missing.value).replace("nothing", "X")
    assert existing.value.input == "path"
    with pytest.raises(NodeError, match="not a folder this server may write to"):
        access.write_folder(str(readable), input="folder")
    assert not (outputs / "deep").exists()
    assert access.write_folder("deep", input="folder") == outputs / "deep"
    with pytest.raises(NodeError, match="not a model file or folder inside"):
        access.model(str(outside), input="model")
    assert access.model("tiny/sd", input="model") == "tiny/sd"
    assert access.model("in.txt", input="model") == str(readable / "in.txt")
    assert access.problem(str(outside / "secret.txt"), "read") == access.problem(str(outside / "no.txt"), "read")
    assert access.problem(str(readable / "later.txt"), "read") is None


def test_an_executor_given_a_policy_applies_it_to_linked_paths(folders: tuple[Path, Path, Path],
                                                               tmp_path: Path) -> None:
    readable, writable, outside = folders
    env = GraphEnv(Registry.discover())
    session = Session(env, None, data_dir=tmp_path / "data",
                        policy=FilePolicy(read=(readable,), write=(writable,)))
    document = parse_document({"nodes": {
        "name": {"type": "text.template", "inputs": {"template": "{x}", "x": str(outside / "secret.txt")}},
        "load": {"type": "image.load", "inputs": {"path": {"from": "name.text"}}}}})
    record = session.run(document).record
    assert record.nodes["load"].status == "failed"
    assert "is not a file inside the folders this server allows" in (record.nodes["load"].error or "")


def test_validation_under_a_policy_refuses_literal_paths_before_anything_runs(folders: tuple[Path, Path, Path],
                                                                            tmp_path: Path) -> None:
    from nodeforge.engine.compiler import validate

    readable, writable, outside = folders
    access = FileAccess(FilePolicy(read=(readable,), write=(writable,)), data_dir=tmp_path / "data")
    document = parse_document({
        "inputs": {"picture": {"type": "image", "default": str(outside / "secret.txt")}},
        "nodes": {"load": {"type": "image.load", "inputs": {"path": str(outside / "secret.txt")}},
                  "fine": {"type": "image.load", "inputs": {"path": "in.txt"}},
                  "save": {"type": "image.save", "inputs": {"image": {"input": "picture"}, "folder": str(readable)}},
                  "draw": {"type": "image.generate", "inputs": {"prompt": "x", "model": str(outside)}}}})
    found = {(issue.node, issue.input, issue.code) for issue in validate(document, GraphEnv(Registry.discover(),
                                                                                             files=access))}
    assert found == {(None, "picture", "forbidden_path"), ("load", "path", "forbidden_path"),
                     ("save", "folder", "forbidden_path"), ("draw", "model", "forbidden_path")}
    assert validate(document, GraphEnv(Registry.discover())) == [], "without a policy paths are checked when used"
    session = Session(GraphEnv(Registry.discover()), None, data_dir=tmp_path / "data",
                      policy=FilePolicy(read=(readable,), write=(writable,)))
    with pytest.raises(GraphValidationError) as refused:
        session.run(document)
    assert {(issue.node, issue.code) for issue in refused.value.issues} >= {("load", "forbidden_path")}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the bomb is the point: our check answers
def test_the_default_pixel_budget_holds_without_a_server(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(12_000, 12_000))
    session = Session(GraphEnv(Registry.discover()), None, data_dir=tmp_path / "data")
    document = parse_document({"nodes": {"load": {"type": "image.load", "inputs": {"path": str(bomb)}}}})
    record = session.run(document).record
    assert record.nodes["load"].error == ("node 'load' (image.load), input 'path': bomb.png: the image is "
                                          "12000x12000 (144 MP), over the limit of 64 MP (--max-image-pixels)")


def test_declarations_are_checked_and_shown_in_the_catalogue() -> None:
    from nodeforge.engine.declarations import FileInput, ModelInput, ModelKind, SeedInput
    from nodeforge.engine.errors import NodeDefinitionError
    from nodeforge.engine.node import Node, NodeInputs, NodeOutputs, build_spec

    class Reads(Node):
        """Reads a model."""

        type_id = "test.reads"
        version = "1.0.0"

        class Inputs(NodeInputs):
            model: str = ModelInput(kind=ModelKind("llm", ("llm",)))
            path: str = FileInput()

        class Outputs(NodeOutputs):
            text: str

        def run(self, inputs: Inputs, ctx: object) -> Outputs:
            return self.Outputs(text=inputs.path)

    spec = build_spec(Reads, "test")
    properties = spec.catalogue_entry()["inputs"]["properties"]
    assert properties["model"]["x-nodeforge-file"] == "model" and properties["model"]["x-nodeforge-models"] == ["llm"]
    assert properties["model"]["x-nodeforge-widget"] == "model"
    assert properties["path"]["x-nodeforge-file"] == "read" and "x-nodeforge-models" not in properties["path"]
    assert properties["path"]["x-nodeforge-widget"] == "file"
    assert dict(spec.files) == {"model": "model", "path": "read"}

    class OldStyle(Reads):
        """Declares files the old way, on the class."""

        files = {"path": "read"}

    with pytest.raises(NodeDefinitionError, match="now declared on the input fields"):
        build_spec(OldStyle, "test")

    class TwoSeeds(Reads):
        """Has two seeds."""

        class Inputs(NodeInputs):
            seed: int = SeedInput()
            noise_seed: int = SeedInput()

    with pytest.raises(NodeDefinitionError, match="a node has one seed"):
        build_spec(TwoSeeds, "test")

    class TextSeed(Reads):
        """Has a seed that is not a number."""

        class Inputs(NodeInputs):
            seed: str = SeedInput("0")

    with pytest.raises(NodeDefinitionError, match="seed input 'seed' must be an int, not text"):
        build_spec(TextSeed, "test")

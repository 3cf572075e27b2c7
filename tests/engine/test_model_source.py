"""Model names resolve through the registry's catalogue, behind the node's context: validation asks it, a node
loads through it, and a registry given another catalogue uses that one (there is no module-level resolver)."""

from pathlib import Path

from nodeforge.engine.compiler import GraphEnv, validate
from nodeforge.engine.document import parse_document
from nodeforge.engine.events import Event, ModelLoaded
from nodeforge.engine.model_source import ModelEntry, NoModels, ResolvedModel
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session
from tests.support import testnodes


class Shelf:
    """A catalogue of one folder: a name is a file in it; ``banned`` names are refused at validation."""

    installed = True

    def __init__(self, folder: Path, banned: str = "") -> None:
        self.folder = folder
        self.banned = banned

    def resolve(self, name, data_dir, *, families=(), relative_paths=True) -> ResolvedModel:
        return ResolvedModel(name, "path", self.folder / name, family="weights")

    def problem(self, name, data_dir=None, *, families=()) -> str | None:
        return f"the shelf does not lend '{name}'" if name == self.banned else None

    def family_of(self, name, data_dir=None) -> str | None:
        return "weights"

    def remote_name(self, name) -> str | None:
        return None

    def known_files(self, name) -> Path | None:
        return self.folder / name

    def entries(self, data_dir) -> list[ModelEntry]:
        return [ModelEntry(path.name, "weights", "shelf", "") for path in self.folder.iterdir()]

    def local_problem(self, name, data_dir) -> str | None:
        return None

    def offline_problem(self, name, data_dir) -> str | None:
        return None


def registry_with(source) -> Registry:
    registry = Registry.discover(model_source=source)
    registry.add_module(testnodes)
    return registry


def test_a_node_loads_through_the_catalogue_its_registry_was_given(tmp_path: Path) -> None:
    (tmp_path / "two.bin").write_bytes(b"x" * 64)
    session = Session(GraphEnv(registry_with(Shelf(tmp_path))), None, devices=["cpu:0"])
    events: list[Event] = []
    doc = parse_document({"nodes": {"w": {"type": "test.load_weights", "inputs": {"model": "two.bin"}}}})
    result = session.run(doc, listener=events.append)
    assert result.record.status == "succeeded", result.record.error
    assert [e.data.model for e in events if isinstance(e.data, ModelLoaded)] == [f"weights:path:{tmp_path / 'two.bin'}"]
    assert session.models.resident_on("two.bin") == ["cpu:0"]


def test_validation_asks_the_same_catalogue(tmp_path: Path) -> None:
    env = GraphEnv(registry_with(Shelf(tmp_path, banned="tiny/sd")))
    doc = parse_document({"nodes": {"g": {"type": "image.generate", "inputs": {"prompt": "a fox",
                                                                              "model": "tiny/sd"}}}})
    assert [(i.node, i.input, i.message) for i in validate(doc, env)] == [
        ("g", "model", "the shelf does not lend 'tiny/sd'")]
    assert validate(doc, GraphEnv(registry_with(Shelf(tmp_path)))) == []


def test_without_a_catalogue_a_model_node_fails_on_its_input_saying_why() -> None:
    session = Session(GraphEnv(registry_with(NoModels())), None, devices=["cpu:0"])
    doc = parse_document({"nodes": {"w": {"type": "test.load_weights", "inputs": {"model": "two.bin"}}}})
    record = session.run(doc).record
    assert record.status == "failed"
    assert record.nodes["w"].error == ("node 'w' (test.load_weights), input 'model': cannot load model 'two.bin': "
                                       "no model catalogue is installed (entry point group 'nodeforge.models')")

"""The model resolver: tiny builds, aliases, paths, Hub ids offline, and the errors that say what was tried."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeforge.nodes.models import ModelResolveError, Resolver, TinyModel, build_resolver
from nodeforge.nodes.models.catalogue.resolver import ModelCatalogue
from nodeforge.nodes.models.catalogue.store import STAMP


def _write_marker(folder: Path) -> None:
    import torch

    (folder / "weights.txt").write_text(repr(torch.rand(4).tolist()))


def make_resolver(tmp_path: Path, toml: str = "") -> Resolver:
    shipped = tmp_path / "shipped.toml"
    shipped.write_text(toml or '[aliases]\nfoo = { model = "tiny/marker", family = "test" }\n'
                                'hubby = "nobody-here/no-such-model"\n')
    return Resolver(ModelCatalogue({"marker": TinyModel("test", _write_marker, "a marker")}, {}), [shipped])


def test_tiny_model_is_built_once_with_a_stamp_and_the_same_bytes_everywhere(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODEFORGE_MODELS_DIR", raising=False)
    resolver = make_resolver(tmp_path)
    first = resolver.resolve("tiny/marker", tmp_path / "a")
    assert first.source == "tiny" and first.family == "test"
    assert first.path == tmp_path / "a" / "models" / "tiny" / "marker"
    assert (first.path / STAMP).is_file()
    other = resolver.resolve("tiny/marker", tmp_path / "b")
    assert (first.path / "weights.txt").read_text() == (other.path / "weights.txt").read_text()
    mtime = (first.path / "weights.txt").stat().st_mtime_ns
    assert resolver.resolve("tiny/marker", tmp_path / "a").path == first.path
    assert (first.path / "weights.txt").stat().st_mtime_ns == mtime
    assert not [p for p in first.path.parent.iterdir() if ".partial-" in p.name]


def test_alias_resolves_to_its_target_and_user_file_overrides(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NODEFORGE_MODELS_DIR", raising=False)
    resolver = make_resolver(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    resolved = resolver.resolve("foo", data)
    assert (resolved.source, resolved.alias, resolved.family) == ("tiny", "foo", "test")
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"x")
    (data / "models.toml").write_text(f'[aliases]\nfoo = "{target}"\n')
    resolved = resolver.resolve("foo", data)
    assert (resolved.source, resolved.path, resolved.alias) == ("path", target, "foo")
    assert resolver.aliases(data)["foo"].origin == "user models.toml"


def test_family_mismatch_and_unknown_names_say_what_would_work(tmp_path: Path) -> None:
    resolver = make_resolver(tmp_path)
    with pytest.raises(ModelResolveError, match="model 'tiny/marker' is a test model; this node takes sd, flux"):
        resolver.resolve("tiny/marker", tmp_path, families=("sd", "flux"))
    with pytest.raises(ModelResolveError, match=r"unknown tiny model 'tiny/nope' \(tiny models: tiny/marker\)"):
        resolver.resolve("tiny/nope", tmp_path)
    with pytest.raises(ModelResolveError) as info:
        resolver.resolve("nonsense", tmp_path)
    assert str(info.value) == ("unknown model 'nonsense': it is not a tiny model (tiny/marker), a shipped model "
                               "(none), an existing file or folder, an alias (foo, hubby) or a Hub id of the form "
                               "org/name")
    with pytest.raises(ModelResolveError, match="model file or folder './missing.safetensors' does not exist"):
        resolver.resolve("./missing.safetensors", tmp_path)
    assert resolver.problem("tiny/nope", tmp_path) == "unknown tiny model 'tiny/nope' (tiny models: tiny/marker)"
    assert resolver.problem("foo", tmp_path, families=("sd",)) == (
        "model 'foo' is a test model; this node takes sd models")
    assert resolver.problem("org/name", tmp_path) is None


def test_hub_id_offline_is_a_clear_error_never_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    resolver = make_resolver(tmp_path)
    for name in ("nobody-here/no-such-model", "hubby"):
        with pytest.raises(ModelResolveError) as info:
            resolver.resolve(name, tmp_path)
        message = str(info.value)
        assert "model 'nobody-here/no-such-model' is not in the local Hugging Face cache" in message
        assert "hf download nobody-here/no-such-model" in message


def test_package_resolver_knows_the_image_models() -> None:
    aliases = build_resolver().aliases(Path("/nonexistent-data-dir"))
    assert aliases["sd-turbo"].target == "stabilityai/sd-turbo"
    assert aliases["flux-schnell"].family == "flux"
    assert aliases["blip-base"].target == "Salesforce/blip-image-captioning-base"


def test_an_alias_can_name_one_file_inside_its_target(tmp_path: Path) -> None:
    """``file`` picks one adapter file of a folder (or Hub repository) holding many; ``allow`` limits a download,
    and the offline error then names the alias, whose ``models get`` fetches only those files."""
    repo = tmp_path / "adapters"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "ip-adapter_sd15.safetensors").write_bytes(b"weights")
    resolver = make_resolver(tmp_path, f'''[aliases]
one = {{ model = "{repo.as_posix()}", family = "ip-adapter-sd", file = "models/ip-adapter_sd15.safetensors" }}
gone = {{ model = "{repo.as_posix()}", file = "models/missing.safetensors" }}
hub = {{ model = "nobody-here/adapters", file = "models/a.safetensors", allow = ["models/a.safetensors"] }}
''')
    resolved = resolver.resolve("one", tmp_path)
    assert resolved.path == repo / "models" / "ip-adapter_sd15.safetensors" and resolved.family == "ip-adapter-sd"
    with pytest.raises(ModelResolveError, match="names models/missing.safetensors, which is not in"):
        resolver.resolve("gone", tmp_path)
    assert resolver.local_problem("gone", tmp_path) == (f"it is an alias of '{repo.as_posix()}': "
                                                        f"models/missing.safetensors is not in {repo.as_posix()}")
    with pytest.raises(ModelResolveError) as caught:
        resolver.resolve("hub", tmp_path)
    assert "`nodeforge models get hub`" in str(caught.value)
    assert "--include 'models/a.safetensors'" in str(caught.value)

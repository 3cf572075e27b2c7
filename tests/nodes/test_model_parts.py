"""Models assembled from component files (a models.toml alias naming a transformer, text encoders and a VAE) and
the image nodes' ``vae`` override: same pixels as the whole model, clear errors naming the component."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeforge.engine.errors import ModelResolveError
from nodeforge.engine.session import RunResult, Session
from nodeforge.nodes.models import build_resolver
from tests.nodes.image_support import generate, image_executor, pixels, run_nodes, succeeded

__all__ = ["image_executor"]


def folder(name: str) -> Path:
    return build_resolver().resolve(name, None).path


def write_aliases(session: Session, text: str) -> None:
    assert session.data_dir is not None
    (Path(session.data_dir) / "models.toml").write_text(text, encoding="utf-8")


def node_error(result: RunResult) -> str:
    assert result.record.status == "failed"
    return result.record.nodes["g"].error or ""


def image_of(session: Session, **inputs: object) -> object:
    return pixels(succeeded(run_nodes(session, {"g": generate(**inputs)}, {"image": "g.image"}))["image"])


def test_a_vae_override_of_the_same_weights_gives_the_same_pixels(image_executor: Session) -> None:
    own = image_of(image_executor)
    assert (image_of(image_executor, vae=str(folder("tiny/sd") / "vae")) == own).all()


def test_another_vae_changes_only_the_decode_and_the_next_run_has_the_model_own(image_executor: Session) -> None:
    own = image_of(image_executor)
    other = image_of(image_executor, vae=str(folder("tiny/sdxl") / "vae"))
    assert (other != own).any()
    assert (image_of(image_executor) == own).all()


def test_a_vae_of_another_family_is_an_error_on_vae(image_executor: Session) -> None:
    result = run_nodes(image_executor, {"g": generate(vae=str(folder("tiny/flux")))}, {"image": "g.image"})
    error = node_error(result)
    assert "input 'vae'" in error and "has 1 latent channel, but model 'tiny/sd' (sd) needs 4" in error


def test_a_model_made_of_component_folders_equals_the_whole_model(image_executor: Session) -> None:
    tiny = folder("tiny/flux")
    write_aliases(image_executor, f"""
[aliases.parts-flux]
family = "flux"
architecture = "tiny/flux"
transformer = "{tiny / 'transformer'}"
text_encoder = "{tiny / 'text_encoder'}"
text_encoder_2 = "{tiny / 'text_encoder_2'}"
vae = "{tiny / 'vae'}"
""")
    whole = image_of(image_executor, model="tiny/flux", guidance_scale=1.0)
    assert (image_of(image_executor, model="parts-flux", guidance_scale=1.0) == whole).all()


def test_a_model_missing_a_component_names_it_before_loading(image_executor: Session) -> None:
    tiny = folder("tiny/flux")
    write_aliases(image_executor, f"""
[aliases.half-flux]
family = "flux"
architecture = "tiny/flux"
transformer = "{tiny / 'transformer'}"
vae = "{tiny / 'vae'}"
""")
    result = run_nodes(image_executor, {"g": generate(model="half-flux")}, {"image": "g.image"})
    error = node_error(result)
    assert "input 'model'" in error and "holds no text_encoder, text_encoder_2" in error
    assert 'text_encoder = "/path/to/text_encoder.safetensors"' in error


def test_a_missing_component_file_is_an_error_naming_alias_and_component(image_executor: Session,
                                                                         tmp_path: Path) -> None:
    write_aliases(image_executor, f"""
[aliases.gone]
family = "flux"
transformer = "{tmp_path / 'flux1-dev.gguf'}"
""")
    result = run_nodes(image_executor, {"g": generate(model="gone")}, {"image": "g.image"})
    error = node_error(result)
    assert "input 'model'" in error and "alias 'gone'" in error and "component transformer" in error


@pytest.mark.parametrize(("entry", "reason"), [
    ('{ family = "flux" }', "needs a model"),
    ('{ model = "tiny/sd", colour = "red" }', "unknown key(s) colour"),
    ('{ model = "tiny/sd", prediction = "x" }', "prediction is epsilon or v"),
])
def test_bad_alias_entries_are_refused_with_the_reason(image_executor: Session, entry: str, reason: str) -> None:
    write_aliases(image_executor, f"[aliases]\nbad = {entry}\n")
    error = node_error(run_nodes(image_executor, {"g": generate(model="bad")}, {"image": "g.image"}))
    assert "input 'model'" in error and reason in error


def test_a_bare_file_name_is_found_in_the_search_folders(tmp_path: Path) -> None:
    """What an imported ComfyUI workflow names (ckpt_name, lora_name) resolves in the user's ComfyUI folders."""
    checkpoints = tmp_path / "ComfyUI" / "models" / "checkpoints"
    (checkpoints / "SDXL").mkdir(parents=True)
    (checkpoints / "SDXL" / "juggernaut.safetensors").write_bytes(b"x")
    data = tmp_path / "data"
    data.mkdir()
    search = '["../ComfyUI/models/loras", "../ComfyUI/models/checkpoints"]'
    (data / "models.toml").write_text(f"[folders]\nsearch = {search}\n", encoding="utf-8")
    resolver = build_resolver()
    found = resolver.resolve("SDXL/juggernaut.safetensors", data)
    assert found.path == (checkpoints / "SDXL" / "juggernaut.safetensors").resolve() and found.source == "path"
    with pytest.raises(ModelResolveError) as missing:
        resolver.resolve("v1-5-pruned-emaonly.safetensors", data)
    assert "does not exist (nor in the search folders" in str(missing.value)
    assert str(checkpoints.resolve()) in str(missing.value)

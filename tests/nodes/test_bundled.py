"""The bundled configuration folders: they assemble offline, parse into the library classes their model_index names,
and their tokenizers give the token ids the real CLIP and T5 tokenizers give."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.errors import ModelResolveError
from nodeforge.nodes.models.catalogue.store import STAMP
from nodeforge.nodes.models.checkpoints import bundled
from nodeforge.nodes.models.checkpoints.bundled import BUNDLED_ARCHITECTURES, config_folder

# sha256 of openai/clip-vit-large-patch14's vocab.json and merges.txt, as every SD/SDXL/SD3/Flux Hub repository
# ships them in tokenizer/ (computed from the copies lllyasviel/stable-diffusion-webui-forge keeps of those repos).
HUB_VOCAB_SHA256 = "e089ad92ba36837a0d31433e555c8f45fe601ab5c221d4f607ded32d9f7a4349"
HUB_MERGES_SHA256 = "9fd691f7c8039210e0fced15865466c65820d09b63988b0174bfe25de299051a"
# Token ids quoted by other tokenizer test suites for the same vocabularies: CLIP's (openai/clip-vit-base-patch32
# in Bumblebee's tests, and several CLIP ports) and T5's SentencePiece model (t5-small, which T5 v1.1 shares, in
# Bumblebee's and hasktorch's T5 tests).
CLIP_IDS = {"a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
            "Hello, world!": [49406, 3306, 267, 1002, 256, 49407]}
# The tokenizers whose Hub files make "!" the pad token (OpenCLIP's: SD 2.x, SDXL's tokenizer_2, SD3's tokenizer_2)
# read a "!" in a prompt as that special token, id 0, where CLIP's own vocabulary has "!</w>" (256).
BANG_PAD_IDS = {**CLIP_IDS, "Hello, world!": [49406, 3306, 267, 1002, 0, 49407]}
T5_IDS = {"Studies have been shown that owning a dog is good for you":
          [6536, 43, 118, 2008, 24, 293, 53, 3, 9, 1782, 19, 207, 21, 25, 1]}
PIPELINES = [name for name, spec in BUNDLED_ARCHITECTURES.items() if spec.kind == "pipeline"]
COMPONENTS = [name for name, spec in BUNDLED_ARCHITECTURES.items() if spec.kind == "component"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def _class(library: str, name: str) -> Any:
    return getattr(importlib.import_module(library), name)


def test_the_catalogue_names_every_architecture_the_loaders_ask_for() -> None:
    assert set(PIPELINES) == {"sd15", "sd2-base", "sd2-v", "sdxl-base", "sdxl-refiner", "sd3-medium", "sd35-medium",
                              "sd35-large", "flux-dev", "flux-schnell", "wan21-t2v-1.3b"}
    assert set(COMPONENTS) == {"clip-l", "clip-g", "t5-xxl", "vae-sd", "vae-sdxl", "vae-sd3", "vae-flux"}
    assert all("/" in spec.hub_repo and spec.description for spec in BUNDLED_ARCHITECTURES.values())
    with pytest.raises(TypeError):
        BUNDLED_ARCHITECTURES["mine"] = BUNDLED_ARCHITECTURES["sd15"]  # type: ignore[index]


@pytest.mark.parametrize("architecture", PIPELINES)
def test_a_pipeline_folder_has_every_component_config_its_model_index_names(architecture: str,
                                                                              models_dir: Path) -> None:
    folder = config_folder(architecture, models_dir)
    assert folder.parent == models_dir / ".configs" and folder.name.startswith(f"{architecture}-")
    assert not [p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin", ".ckpt", ".gguf")]
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    missing = BUNDLED_ARCHITECTURES[architecture].missing
    checked = []
    for name, entry in sorted(index.items()):
        if not isinstance(entry, list) or entry[0] is None or name == "safety_checker":
            continue
        if name in missing:
            assert not (folder / name).exists()
            continue
        library, class_name = entry
        cls = _class(library, class_name)
        if name.startswith("tokenizer"):
            tokenizer = cls.from_pretrained(str(folder / name))
            assert tokenizer.model_max_length in (77, 512)
        elif name == "scheduler":
            scheduler = cls.from_pretrained(str(folder), subfolder=name)
            assert scheduler.config.num_train_timesteps == 1000
        elif name == "feature_extractor":
            assert cls.from_pretrained(str(folder / name)).crop_size == {"height": 224, "width": 224}
        elif library == "transformers":
            config = cls.config_class.from_pretrained(str(folder / name))
            assert type(config) is cls.config_class and config.architectures == [class_name]
        else:
            config = cls.load_config(str(folder / name))
            assert config["_class_name"] == class_name
            _, unused, _ = cls.extract_init_dict(config)
            assert not {key for key in unused if not key.startswith("_")}, unused
        checked.append(name)
    assert {"scheduler", "vae"} - set(missing) <= set(checked) and ({"unet", "transformer"} & set(checked))


@pytest.mark.parametrize("architecture", COMPONENTS)
def test_a_component_folder_is_one_config_at_its_root(architecture: str, models_dir: Path) -> None:
    folder = config_folder(architecture, models_dir)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if architecture.startswith("vae-"):
        from diffusers import AutoencoderKL

        assert config["_class_name"] == "AutoencoderKL"
        assert AutoencoderKL.load_config(str(folder))["latent_channels"] == (4 if architecture in ("vae-sd", "vae-sdxl")
                                                                             else 16)
        return
    from transformers import AutoConfig, AutoTokenizer

    model_type = {"clip-l": "clip_text_model", "clip-g": "clip_text_model", "t5-xxl": "t5"}[architecture]
    assert AutoConfig.from_pretrained(str(folder)).model_type == model_type
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = {"t5-xxl": T5_IDS, "clip-l": CLIP_IDS, "clip-g": BANG_PAD_IDS}[architecture]
    assert {text: tokenizer(text).input_ids for text in ids} == ids


def test_clip_vocabulary_is_the_hub_files_byte_for_byte() -> None:
    vocab, merges = bundled.clip_vocabulary()
    assert hashlib.sha256(vocab.encode("utf-8")).hexdigest() == HUB_VOCAB_SHA256
    assert hashlib.sha256(merges.encode("utf-8")).hexdigest() == HUB_MERGES_SHA256
    assert len(json.loads(vocab)) == 49408 and merges.count("\n") == 48895


@pytest.mark.parametrize(("architecture", "subfolder", "pad", "pad_id"), [
    ("sd15", "tokenizer", "<|endoftext|>", 49407), ("sd2-base", "tokenizer", "!", 0), ("sd2-v", "tokenizer", "!", 0),
    ("sdxl-base", "tokenizer", "<|endoftext|>", 49407), ("sdxl-base", "tokenizer_2", "!", 0),
    ("sdxl-refiner", "tokenizer_2", "!", 0), ("sd3-medium", "tokenizer", "<|endoftext|>", 49407),
    ("sd3-medium", "tokenizer_2", "!", 0), ("flux-dev", "tokenizer", "<|endoftext|>", 49407),
])
def test_clip_tokenizers_give_clips_ids_and_the_hubs_pad_token(architecture: str, subfolder: str, pad: str,
                                                              pad_id: int, models_dir: Path) -> None:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(config_folder(architecture, models_dir) / subfolder))
    ids = CLIP_IDS if pad_id == 49407 else BANG_PAD_IDS
    assert {text: tokenizer(text).input_ids for text in ids} == ids
    assert (tokenizer.pad_token, tokenizer.pad_token_id, tokenizer.model_max_length) == (pad, pad_id, 77)
    padded = tokenizer("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[7:] == [pad_id] * 70


@pytest.mark.parametrize(("architecture", "subfolder"), [("sd3-medium", "tokenizer_3"), ("sd35-large", "tokenizer_3"),
                                                         ("flux-dev", "tokenizer_2"), ("flux-schnell", "tokenizer_2")])
def test_t5_tokenizers_give_t5s_ids(architecture: str, subfolder: str, models_dir: Path) -> None:
    from transformers import T5TokenizerFast

    tokenizer = T5TokenizerFast.from_pretrained(str(config_folder(architecture, models_dir) / subfolder))
    assert {text: tokenizer(text).input_ids for text in T5_IDS} == T5_IDS
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, len(tokenizer), tokenizer.model_max_length) == \
        (0, 1, 32100, 512)


def test_a_second_call_reuses_the_folder_and_a_new_revision_builds_a_new_one(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    first = config_folder("vae-flux", tmp_path)
    stamp = (first / STAMP).read_text(encoding="utf-8")
    mtime = (first / "config.json").stat().st_mtime_ns
    assert config_folder("vae-flux", tmp_path) == first
    assert (first / "config.json").stat().st_mtime_ns == mtime and (first / STAMP).read_text() == stamp
    monkeypatch.setattr(bundled, "BUILD_REVISION", bundled.BUILD_REVISION + 1)
    second = config_folder("vae-flux", tmp_path)
    assert second != first and second.parent == first.parent
    assert (second / "config.json").read_bytes() == (first / "config.json").read_bytes()
    assert not [p for p in first.parent.iterdir() if ".partial-" in p.name]


def test_schnell_and_sd35_medium_take_their_own_denoiser_over_the_shared_files(models_dir: Path) -> None:
    schnell = config_folder("flux-schnell", models_dir)
    transformer = json.loads((schnell / "transformer" / "config.json").read_text(encoding="utf-8"))
    scheduler = json.loads((schnell / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    assert (transformer["guidance_embeds"], scheduler["shift"], scheduler["use_dynamic_shifting"]) == \
        (False, 1.0, False)
    medium = json.loads((config_folder("sd35-medium", models_dir) / "transformer" / "config.json").read_text())
    large = json.loads((config_folder("sd35-large", models_dir) / "transformer" / "config.json").read_text())
    assert (medium["num_layers"], medium["dual_attention_layers"], medium["pos_embed_max_size"]) == \
        (24, list(range(13)), 384)
    assert (large["num_layers"], "dual_attention_layers" in large, large["pos_embed_max_size"]) == (38, False, 192)


def test_an_unknown_architecture_names_the_bundled_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelResolveError, match=r"unknown bundled configuration 'sd9'.*flux-dev.*sd15"):
        config_folder("sd9", tmp_path)


def test_a_missing_tokenizer_package_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundled, "T5_TOKENIZER", ("no-such-nodeforge-package", "tokenizer.json"))
    with pytest.raises(ModelResolveError, match=r"no-such-nodeforge-package is not installed.*--no-deps"):
        config_folder("t5-xxl", tmp_path)
    assert not (tmp_path / ".configs").exists() or not [p for p in (tmp_path / ".configs").iterdir() if p.is_dir()]

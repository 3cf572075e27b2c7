"""Tiny image models (SD 1.x, SDXL, SD3, Flux, BLIP, ESRGAN) built from configs with fixed random weights.

Each builder writes a folder that the library's own loader opens (``from_pretrained`` for pipelines and
transformers, a safetensors state dict for ESRGAN). They run the real code paths in a fraction of a second on a CPU
and produce noise, not pictures. The resolver seeds the torch RNG before calling a builder, so every machine writes
the same bytes; tokenizers are written from hand-made vocabularies, so nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nodeforge.nodes.models.catalogue.resolver import TinyModel

WORDS = ["a", "an", "the", "of", "in", "on", "with", "and", "photo", "picture", "painting", "cat", "dog", "fox",
         "red", "blue", "green", "tree", "sky", "sea", "snow", "light", "portrait", "city", "night", "sun"]
ESRGAN_WEIGHTS = "model.safetensors"


def write_clip_tokenizer(folder: Path) -> None:
    """A byte-level CLIP BPE vocabulary with whole-word merges for WORDS (``model_max_length`` set: see P6)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]:
        vocab.setdefault(token, len(vocab))
    merges: list[str] = []
    for word in WORDS:
        if len(word) < 2:
            continue
        current = word[0]
        for i, char in enumerate(word[1:], start=1):
            right = char + ("</w>" if i == len(word) - 1 else "")
            merge = f"{current} {right}"
            if merge not in merges:
                merges.append(merge)
            current += right
            vocab.setdefault(current, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}), encoding="utf-8")


def _clip_tokenizer(folder: Path) -> Any:
    from transformers import CLIPTokenizer

    write_clip_tokenizer(folder)
    return CLIPTokenizer.from_pretrained(str(folder))


def _clip_config(tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)


def _vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
                         layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, sample_size=64)


def _euler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  steps_offset=1, timestep_spacing="trailing")


def sd_unet(in_channels: int = 4) -> Any:
    """The tiny SD 1.x UNet (32, 64), cross-attention only at the low resolution; 9 input channels make the
    inpainting variant (latents, mask, masked-image latents)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=32, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8)


def sdxl_unet() -> Any:
    """The tiny SDXL UNet: linear projections, ``text_time`` added conditioning over two text encoders."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64)


def build_sd(folder: Path) -> None:
    """SD 1.x layout: UNet (32, 64) with cross-attention only at the low resolution, 2-level VAE, 2-layer CLIP."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    tokenizer = _clip_tokenizer(folder / "_tokenizer")
    text_encoder = CLIPTextModel(_clip_config(tokenizer))
    unet = sd_unet()
    pipe = StableDiffusionPipeline(vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=_euler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    _remove(folder / "_tokenizer")


def build_sdxl(folder: Path) -> None:
    """SDXL layout: two CLIP text encoders (the second with projection), ``text_time`` added conditioning."""
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _clip_tokenizer(folder / "_tokenizer")
    unet = sdxl_unet()
    pipe = StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_clip_config(tokenizer)),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tokenizer)), tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet, scheduler=_euler())
    pipe.save_pretrained(str(folder))
    _remove(folder / "_tokenizer")


def t5_tokenizer() -> Any:
    """A T5 tokenizer without sentencepiece: a Unigram model over WORDS and single characters; 64 tokens long, so
    the tiny pipelines do not pad prompts to the 512 tokens real T5 encoders take."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5Tokenizer  # T5TokenizerFast is this class in transformers 5

    chars = sorted(set("".join(WORDS)) | set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-") | {"▁"})
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("▁" + w, -1.0) for w in WORDS] + [(c, -5.0) for c in chars]
    unigram = Tokenizer(models.Unigram(vocab, unk_id=2))
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    return T5Tokenizer(tokenizer_object=unigram, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                       extra_ids=0, model_max_length=64)


def build_flux(folder: Path) -> None:
    """Flux layout: CLIP + T5 text encoders, a one-block MMDiT transformer, a one-level VAE (flow matching)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    tokenizer = _clip_tokenizer(folder / "_tokenizer")
    t5_tok = t5_tokenizer()
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                 pad_token_id=0, eos_token_id=1))
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=CLIPTextModel(
        _clip_config(tokenizer)), tokenizer=tokenizer, text_encoder_2=t5, tokenizer_2=t5_tok,
        transformer=transformer, vae=vae)
    pipe.save_pretrained(str(folder))
    _remove(folder / "_tokenizer")


def build_sd3(folder: Path) -> None:
    """SD3 layout: two CLIP encoders with projection and a T5, a one-block MMDiT (patch 1), flow matching."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel

    tokenizer = _clip_tokenizer(folder / "_tokenizer")
    t5_tok = t5_tokenizer()
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=64, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                 pad_token_id=0, eos_token_id=1))
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=64, pooled_projection_dim=64, out_channels=4)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
                        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, sample_size=64, shift_factor=0.0609,
                        scaling_factor=1.5035, use_quant_conv=False, use_post_quant_conv=False)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
        text_encoder=CLIPTextModelWithProjection(_clip_config(tokenizer)), tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tokenizer)), tokenizer_2=tokenizer,
        text_encoder_3=t5, tokenizer_3=t5_tok)
    pipe.save_pretrained(str(folder))
    _remove(folder / "_tokenizer")


def build_blip(folder: Path) -> None:
    """BLIP captioning layout: a ViT (32 px, patch 8) and a 2-layer BERT decoder with ``[DEC]`` as BOS."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "is", "there", ".", ","]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer.from_pretrained(str(folder))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    model = BlipForConditionalGeneration(BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id, sep_token_id=tokenizer.sep_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=32))
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))


def build_esrgan(folder: Path) -> None:
    """A small RRDBNet x4 (num_feat 16, 2 blocks; growth 32 as upstream) saved as an upstream-named state dict."""
    from safetensors.torch import save_file

    from nodeforge.nodes.models.upscalers.esrgan_arch import architectures

    model = architectures().RRDBNet(num_feat=16, num_block=2, num_grow_ch=32)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / ESRGAN_WEIGHTS))


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


TINY = {
    "sd": TinyModel("sd", build_sd, "SD 1.x layout, random weights (noise): tests and the offline quickstart"),
    "sdxl": TinyModel("sdxl", build_sdxl, "SDXL layout, random weights (noise)"),
    "flux": TinyModel("flux", build_flux, "Flux layout, random weights (noise)", revision=3),
    "sd3": TinyModel("sd3", build_sd3, "SD3 layout, random weights (noise)", revision=2),
    "blip": TinyModel("blip", build_blip, "BLIP captioning layout, random weights (random words)"),
    "esrgan": TinyModel("esrgan", build_esrgan, "RRDBNet x4, 16 features, 2 blocks, random weights"),
}

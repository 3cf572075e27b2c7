"""Tiny stand-ins for the music family, built from configs with fixed random weights: MusicGen (mono, stereo and
melody layouts, through transformers) and Stable Audio (through diffusers).

They run the real loading and generation code in about a second on a CPU, offline; what they play is noise. The
tokenizer is the in-memory T5 Unigram of ``tiny_media.t5_tokenizer`` (no sentencepiece, no download). The codec runs at
8 kHz with MusicGen's 50 frames a second (hop 160), so a second of audio is 50 generated tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nodeforge.nodes.models.catalogue.resolver import TinyModel
from nodeforge.nodes.models.tiny.tiny_media import t5_tokenizer

RATE = 8000
CODEBOOK = 64


def _t5_encoder_config(vocab: int) -> Any:
    from transformers import T5Config

    return T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                    pad_token_id=0, eos_token_id=1)


def _encodec_config() -> Any:
    """An EnCodec at 8 kHz, hop 160 (50 frames a second), two 64-entry codebooks (0.6 kbps)."""
    from transformers import EncodecConfig

    return EncodecConfig(sampling_rate=RATE, audio_channels=1, hidden_size=16, num_filters=4, num_residual_layers=1,
                         upsampling_ratios=[8, 5, 4], codebook_size=CODEBOOK, target_bandwidths=[0.6],
                         num_lstm_layers=1)


def _decoder(config_class: Any, codebooks: int, channels: int) -> Any:
    return config_class(vocab_size=CODEBOOK, max_position_embeddings=1024, num_hidden_layers=2, ffn_dim=64,
                        num_attention_heads=4, hidden_size=32, num_codebooks=codebooks, audio_channels=channels,
                        pad_token_id=CODEBOOK, bos_token_id=CODEBOOK, initializer_factor=0.5)


def _fill_codebooks(model: Any) -> None:
    """Random codebook vectors: EnCodec starts them at zero (training fills them), which would make every code
    decode to the same sound."""
    import torch

    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.copy_(torch.randn_like(layer.codebook.embed))
            layer.codebook.embed_avg.copy_(layer.codebook.embed)


def _generation_defaults(model: Any) -> None:
    """MusicGen's own generation defaults (sampling, top-k, guidance 3), scaled to the tiny codebook."""
    config = model.generation_config
    config.update(do_sample=True, top_k=16, guidance_scale=3.0, decoder_start_token_id=CODEBOOK,
                  pad_token_id=CODEBOOK, bos_token_id=CODEBOOK, max_length=1024)
    config._from_model_config = False


def build_tiny_musicgen(folder: Path, channels: int = 1) -> None:
    """MusicGen (musicgen-small layout: T5 encoder, EnCodec, decoder over the codebooks); ``channels=2`` is the
    musicgen-stereo layout, whose decoder interleaves a left and a right set of codebooks."""
    from transformers import (
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
    )

    tokenizer = t5_tokenizer()
    config = MusicgenConfig(text_encoder=_t5_encoder_config(len(tokenizer)), audio_encoder=_encodec_config(),
                            decoder=_decoder(MusicgenDecoderConfig, 2 * channels, channels))
    model = MusicgenForConditionalGeneration(config)
    _fill_codebooks(model)
    _generation_defaults(model)
    model.save_pretrained(str(folder))
    MusicgenProcessor(EncodecFeatureExtractor(feature_size=channels, sampling_rate=RATE), tokenizer) \
        .save_pretrained(str(folder))


def build_tiny_musicgen_stereo(folder: Path) -> None:
    build_tiny_musicgen(folder, channels=2)


def build_tiny_musicgen_melody(folder: Path) -> None:
    """MusicGen Melody: the decoder reads a 12-bin chroma of a melody before the text. Its feature extractor
    config is written as JSON (transformers' extractor class needs torchaudio to be constructed, the node does
    not)."""
    from transformers import (
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    tokenizer = t5_tokenizer()
    config = MusicgenMelodyConfig(text_encoder=_t5_encoder_config(len(tokenizer)), audio_encoder=_encodec_config(),
                                  decoder=_decoder(MusicgenMelodyDecoderConfig, 2, 1), num_chroma=12,
                                  chroma_length=235)
    model = MusicgenMelodyForConditionalGeneration(config)
    _fill_codebooks(model)
    _generation_defaults(model)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "MusicgenMelodyFeatureExtractor", "processor_class": "MusicgenMelodyProcessor",
        "feature_size": 12, "num_chroma": 12, "sampling_rate": RATE, "n_fft": 4096, "hop_length": 1024,
        "chunk_length": 30, "padding_value": 0.0, "return_attention_mask": False, "stem_indices": [3, 2]}))


def build_tiny_stable_audio(folder: Path) -> None:
    """Stable Audio Open's layout: a DiT over Oobleck VAE latents (stereo, 8 kHz, hop 8), a T5 encoder and the
    seconds-start/total projection. Its latent is 1024 long, so it plays at most 1.024 s."""
    from diffusers import (
        AutoencoderOobleck,
        CosineDPMSolverMultistepScheduler,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
    )
    from transformers import T5EncoderModel

    tokenizer = t5_tokenizer()
    encoder = T5EncoderModel(_t5_encoder_config(len(tokenizer)))
    transformer = StableAudioDiTModel(sample_size=1024, in_channels=4, num_layers=2, attention_head_dim=8,
                                      num_attention_heads=2, num_key_value_attention_heads=1, out_channels=4,
                                      cross_attention_dim=16, time_proj_dim=8, global_states_input_dim=32,
                                      cross_attention_input_dim=16)
    vae = AutoencoderOobleck(encoder_hidden_size=8, downsampling_ratios=[2, 4], decoder_channels=8,
                             decoder_input_channels=4, audio_channels=2, channel_multiples=[1, 2],
                             sampling_rate=RATE)
    projection = StableAudioProjectionModel(text_encoder_dim=32, conditioning_dim=16, min_value=0, max_value=512)
    scheduler = CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction", sigma_data=1.0,
                                                  sigma_schedule="exponential")
    StableAudioPipeline(vae=vae, text_encoder=encoder, projection_model=projection, tokenizer=tokenizer,
                        transformer=transformer, scheduler=scheduler).save_pretrained(str(folder))


TINY = {
    "musicgen": TinyModel(family="musicgen", build=build_tiny_musicgen, description="MusicGen (musicgen-small "
                          "layout), mono 8 kHz, 50 tokens a second (random weights: noise)"),
    "musicgen-stereo": TinyModel(family="musicgen", build=build_tiny_musicgen_stereo, description="MusicGen "
                                 "stereo layout, 2 channels at 8 kHz (random weights: noise)"),
    "musicgen-melody": TinyModel(family="musicgen-melody", build=build_tiny_musicgen_melody, description="MusicGen "
                                 "Melody layout, conditioned on a melody's chroma, 8 kHz (random weights: noise)"),
    "stable-audio": TinyModel(family="stable-audio", build=build_tiny_stable_audio, description="Stable Audio "
                              "Open layout (DiT, Oobleck VAE, T5), stereo 8 kHz, up to 1.024 s (random weights: "
                              "noise)"),
}

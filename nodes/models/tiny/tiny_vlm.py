"""``tiny/vlm``: a vision-language model in the layout of SmolVLM-256M-Instruct (Idefics3: a SigLIP-style vision
tower, a pixel-shuffle projector and a Llama text model), built from a config with fixed random weights.

It runs the real ``AutoProcessor`` / ``AutoModelForImageTextToText`` code of ``image.ask``: the chat template with
image placeholders, the image processor that splits a picture into tiles plus a global view (64 px long edge, 32 px
tiles, so a square picture becomes 4 tiles + 1 view of 4 image tokens each), and generation. Its answers are word
salad: the weights are random.
"""

from __future__ import annotations

from pathlib import Path

from nodeforge.nodes.models.catalogue.resolver import TinyModel
from nodeforge.nodes.models.tiny.tiny_media import CORPUS

TILE = 32  # the vision tower's picture size and the image processor's tile size
LONGEST_EDGE = 64  # pictures are resized to this long edge before tiling
PATCH = 8
SCALE_FACTOR = 2  # the projector's pixel shuffle: (32/8)^2 patches / 2^2 = 4 image tokens per tile
IMAGE_SEQ_LEN = (TILE // PATCH) ** 2 // SCALE_FACTOR ** 2
CONTEXT = 1024

# The conversation in SmolVLM's form ("User:<image>question<end_of_utterance>\nAssistant:"); a message's content
# is a string or a list of text and image parts, as transformers' processors pass them.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %} {{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ ' ' + part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>",
                *(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7))]


def build_tiny_vlm(folder: Path) -> None:
    """Idefics3ForConditionalGeneration (vision: hidden 32, 2 layers, 32 px in 8 px patches; text: Llama hidden
    64, 2 layers, 1024 positions), a byte-level BPE tokenizer trained on a few sentences that holds Idefics3's
    image tokens, and an Idefics3 processor (PIL image processor) with a SmolVLM-style chat template.

    As with ``tiny/llm``, generation suppresses every token but whole words and basic punctuation (end of turn
    included, so an answer runs to ``max_new_tokens``): readable word salad instead of stray bytes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", *IMAGE_TOKENS])
    raw.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|bos|>", eos_token="<end_of_utterance>",
                                        pad_token="<|pad|>", model_max_length=CONTEXT)
    vocab = tokenizer.get_vocab()
    text = {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": CONTEXT,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "image_size": TILE, "patch_size": PATCH}
    model = Idefics3ForConditionalGeneration(Idefics3Config(
        text_config=text, vision_config=vision, scale_factor=SCALE_FACTOR, image_token_id=vocab["<image>"]))
    generation = model.generation_config
    generation.bos_token_id, generation.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    generation.suppress_tokens = sorted(
        index for token, index in vocab.items()
        if not ((token.startswith("Ġ") and token[1:].isalpha() and len(token) > 2) or token in (".", ",")))
    model.save_pretrained(str(folder))
    images = Idefics3ImageProcessorPil(size={"longest_edge": LONGEST_EDGE}, max_image_size={"longest_edge": TILE},
                                       do_image_splitting=True)
    processor = Idefics3Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=IMAGE_SEQ_LEN,
                                  chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(str(folder))


TINY = {
    "vlm": TinyModel(family="vlm", build=build_tiny_vlm,
                     description="SmolVLM/Idefics3 layout (vision tower 32 px tiles + Llama text model), chat "
                     "template with image placeholders, several pictures per question (random weights: word "
                     "salad)"),
}

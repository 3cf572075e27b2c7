"""Widget names of ComfyUI's core nodes, in the order the UI format's ``widgets_values`` lists them.

The UI format stores widget values by position only; the API format names them. Only the classes the importer maps
(and the value nodes it resolves) are listed: a node of another class is reported as unmapped before its widgets
matter. The editor adds a ``control_after_generate`` value (``randomize``, ``fixed``... or a bool) after each seed
widget, and an upload button's value after a file choice; both are skipped."""

from __future__ import annotations

from typing import Any

SEEDS = ("seed", "noise_seed")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
UPLOAD = "upload"

WIDGETS: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CheckpointLoader": ("config_name", "ckpt_name"),
    "unCLIPCheckpointLoader": ("ckpt_name",),
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("width", "height", "crop_w", "crop_h", "target_width", "target_height", "text_g",
                           "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("ascore", "width", "height", "text"),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl", "guidance"),
    "KSampler": ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "start_at_step",
                         "end_at_step", "return_with_leftover_noise"),
    "SamplerCustom": ("add_noise", "noise_seed", "cfg"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "VAEEncodeForInpaint": ("grow_mask_by",),
    "SaveImage": ("filename_prefix",),
    "LoadImage": ("image", UPLOAD),
    "LoadImageMask": ("image", "channel", UPLOAD),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "UpscaleModelLoader": ("model_name",),
    "ImageScale": ("upscale_method", "width", "height", "crop"),
    "ImageScaleBy": ("upscale_method", "scale_by"),
    "ImageScaleToTotalPixels": ("upscale_method", "megapixels"), "RepeatImageBatch": ("amount",),
    "LatentUpscale": ("upscale_method", "width", "height", "crop"),
    "LatentUpscaleBy": ("upscale_method", "scale_by"),
    "ControlNetLoader": ("control_net_name",),
    "DiffControlNetLoader": ("control_net_name",),
    "ControlNetApply": ("strength",),
    "ControlNetApplyAdvanced": ("strength", "start_percent", "end_percent"),
    "ControlNetApplySD3": ("strength", "start_percent", "end_percent"),
    "TripleCLIPLoader": ("clip_name1", "clip_name2", "clip_name3"),
    "UNETLoader": ("unet_name", "weight_dtype"), "UnetLoaderGGUF": ("unet_name",),
    "DualCLIPLoaderGGUF": ("clip_name1", "clip_name2", "type"), "CLIPLoaderGGUF": ("clip_name", "type"),
    "SDTurboScheduler": ("steps", "denoise"), "AlignYourStepsScheduler": ("model_type", "steps", "denoise"),
    "InpaintModelConditioning": ("noise_mask",), "ImageToMask": ("channel",),
    "DualCLIPLoader": ("clip_name1", "clip_name2", "type", "device"),
    "CLIPLoader": ("clip_name", "type", "device"),
    "VAELoader": ("vae_name",),
    "CFGGuider": ("cfg",),
    "RandomNoise": ("noise_seed",),
    "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "KarrasScheduler": ("steps", "sigma_max", "sigma_min", "rho"),
    "FluxGuidance": ("guidance",),
    "ModelSamplingFlux": ("max_shift", "base_shift", "width", "height"),
    "ModelSamplingDiscrete": ("sampling", "zsnr"),
    "ModelSamplingSD3": ("shift",),
    "ModelSamplingAuraFlow": ("shift",),
    "CLIPSetLastLayer": ("stop_at_clip_layer",),
    "ImagePadForOutpaint": ("left", "top", "right", "bottom", "feathering"),
    "GrowMask": ("expand", "tapered_corners"),
    "Canny": ("low_threshold", "high_threshold"),
    "IPAdapterUnifiedLoader": ("preset",), "IPAdapterModelLoader": ("ipadapter_file",),
    "IPAdapter": ("weight", "start_at", "end_at", "weight_type"),
    "IPAdapterAdvanced": ("weight", "weight_type", "combine_embeds", "start_at", "end_at", "embeds_scaling"),
    "CLIPVisionLoader": ("clip_name",), "CLIPVisionEncode": ("crop",), "SetUnionControlNetType": ("type",),
    "CannyEdgePreprocessor": ("low_threshold", "high_threshold", "resolution"),
    "MiDaS-DepthMapPreprocessor": ("a", "bg_threshold", "resolution"),
    "DepthAnythingPreprocessor": ("ckpt_name", "resolution"),
    "DepthAnythingV2Preprocessor": ("ckpt_name", "resolution"),
    "PrepImageForClipVision": ("interpolation", "crop_position", "sharpening"),
    "Zoe-DepthMapPreprocessor": ("resolution",),
    "EmptyHunyuanLatentVideo": ("width", "height", "length", "batch_size"),
    "EmptyLTXVLatentVideo": ("width", "height", "length", "batch_size"),
    "WanImageToVideo": ("width", "height", "length", "batch_size"),
    "Wan22ImageToVideoLatent": ("width", "height", "length", "batch_size"),
    "LTXVImgToVideo": ("width", "height", "length", "batch_size", "strength"),
    "LTXVConditioning": ("frame_rate",), "LTXVPreprocess": ("img_compression",),
    "LTXVScheduler": ("steps", "max_shift", "base_shift", "stretch", "terminal"),
    "EmptyLatentAudio": ("seconds", "batch_size"), "ConditioningStableAudio": ("seconds_start", "seconds_total"),
    "CreateVideo": ("fps",), "LoadVideo": ("file", UPLOAD), "SaveVideo": ("filename_prefix", "format", "codec"),
    "SaveAnimatedWEBP": ("filename_prefix", "fps", "lossless", "quality", "method"),
    "SaveAnimatedPNG": ("filename_prefix", "fps", "compress_level"),
    "SaveWEBM": ("filename_prefix", "codec", "fps", "crf"),
    "SaveAudio": ("filename_prefix",), "SaveAudioMP3": ("filename_prefix", "quality"),
    "SaveAudioOpus": ("filename_prefix", "quality"),
    "PrimitiveInt": ("value",), "PrimitiveFloat": ("value",), "PrimitiveString": ("value",),
    "PrimitiveStringMultiline": ("value",), "PrimitiveBoolean": ("value",),
}


def named_widgets(class_type: str, values: Any) -> dict[str, Any]:
    """The widget values of a UI-format node by name (a dict of values is already named)."""
    if isinstance(values, dict):
        return {str(name): value for name, value in values.items()}
    if not isinstance(values, list):
        return {}
    names = WIDGETS.get(class_type, ())
    named: dict[str, Any] = {}
    position = 0
    for name in names:
        if position >= len(values):
            break
        if name != UPLOAD:
            named[name] = values[position]
        position += 1
        if name in SEEDS and position < len(values) and _is_control(values[position]):
            position += 1
    return named


def _is_control(value: Any) -> bool:
    return isinstance(value, bool) or value in CONTROL_VALUES

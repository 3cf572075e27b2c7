"""ComfyUI video and audio workflows onto nodeforge's ``video.*`` and ``audio.*`` nodes.

ComfyUI samples a video or audio latent with the same samplers as pictures; here a sampler whose latent is a video
(Wan, LTX-Video latents) becomes one ``video.generate``, and one whose latent is audio (Stable Audio) one
``audio.music``. Decoded frames stay a video (``Footage``), which the save nodes (SaveAnimatedWEBP, SaveWEBM,
SaveVideo, VHS_VideoCombine...) write with ``video.save``. Sampler and scheduler names are not carried over: the
video and audio pipelines use their model's own schedule (said in a note).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nodeforge.nodes.importers.comfy_values import (
    Cond,
    Evaluator,
    Footage,
    Guider,
    Latent,
    Lazy,
    Model,
    Named,
    Noise,
    NotMapped,
    Pixels,
    Sigmas,
    Sound,
)
from nodeforge.nodes.importers.comfy_workflow import ComfyNode
from nodeforge.nodes.importers.result import Unmapped

VIDEO_FAMILIES = ("wan", "ltx", "cogvideox")
DEFAULT_FPS = {"wan": 16.0, "ltx": 24.0, "cogvideox": 8.0}
MEDIA_LATENTS = ("video", "audio", "movie", "sound")


def is_media(latent: Any) -> bool:
    return isinstance(latent, Latent) and latent.kind in MEDIA_LATENTS


def _video_latent(ev: Evaluator, node: ComfyNode, image: str = "") -> Latent:
    return Latent("video", ev.integer(node, "width", 832), ev.integer(node, "height", 480),
                  ev.integer(node, "batch_size", 1), image=image, frames=ev.integer(node, "length", 33))


def empty_video(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (_video_latent(ev, node),)


def start_image(ev: Evaluator, node: ComfyNode, name: str = "start_image") -> str:
    image = ev.optional(node, name, Pixels)
    return image.ref if image else ""


def wan_image_to_video(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    if node.inputs.get("clip_vision_output") is not None:
        ev.warn(node, "clip_vision_output is not used: nodeforge's Wan image-to-video encodes the start image itself")
    latent = _video_latent(ev, node, start_image(ev, node))
    return ev.typed(node, "positive", Cond), ev.typed(node, "negative", Cond), latent


def wan22_latent(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (_video_latent(ev, node, start_image(ev, node)),)


def ltxv_image_to_video(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    strength = ev.number(node, "strength", 1.0)
    if strength != 1.0:
        ev.warn(node, f"strength {strength:g} is not carried over: the image is the first frame as it is")
    latent = _video_latent(ev, node, ev.typed(node, "image", Pixels).ref)
    return ev.typed(node, "positive", Cond), ev.typed(node, "negative", Cond), latent


def ltxv_conditioning(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    rate = ev.number(node, "frame_rate", 25.0)
    return (replace(ev.typed(node, "positive", Cond), frame_rate=rate),
            replace(ev.typed(node, "negative", Cond), frame_rate=rate))


def ltxv_scheduler(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    ev.warn(node, "max_shift, base_shift, stretch and terminal are not carried over: LTX-Video's own schedule is "
                  "used")
    return (Sigmas("ltxv", ev.integer(node, "steps", 30), 1.0),)


def ltxv_preprocess(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    ev.warn(node, "the start image is not compressed (img_compression is LTX-Video's trick to match video frames)")
    return (ev.typed(node, "image", Pixels),)


def clip_vision_encode(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Named("clip_vision_output", ev.typed(node, "image", Pixels).ref),)


def empty_audio(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Latent("audio", batch=ev.integer(node, "batch_size", 1), seconds=ev.number(node, "seconds", 47.6)),)


def stable_audio_conditioning(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    start = ev.number(node, "seconds_start", 0.0)
    if start:
        ev.warn(node, f"seconds_start {start:g} is not carried over (the clip starts at 0)")
    return ev.typed(node, "positive", Cond), ev.typed(node, "negative", Cond)


def sample(ev: Evaluator, node: ComfyNode, latent: Latent) -> tuple[Any, ...]:
    """A sampler over a video or audio latent, whatever sampler class it is."""
    if latent.kind in ("movie", "sound"):
        ev.warn(node, "a second sampling pass over a finished video or sound is left out: nodeforge's pipeline runs "
                      "the whole schedule in the first (for Wan 2.2 14B, an alias holding both experts)")
        return (latent, latent)
    model, positive, negative, seed, steps, cfg = _settings(ev, node)
    ev.warn(node, "the sampler and scheduler are not carried over: the model's own pipeline schedule is used")
    build = ev.builder
    inputs: dict[str, Any] = {"prompt": build.bind("prompt", positive.text, "text")}
    if negative is not None and negative.text:
        inputs["negative_prompt"] = build.bind("negative_prompt", negative.text, "text")
    inputs.update(model=build.bind_model(model.name), steps=build.bind("steps", steps, "int"),
                  guidance_scale=round(float(positive.guidance or cfg), 4), seed=build.bind("seed", seed, "int"))
    if latent.kind == "audio":
        if model.family != "stable-audio":
            raise ev.fail(node, f"an audio latent sampled with {model.name}, which nodeforge cannot place in a family "
                                "it runs (Stable Audio)")
        inputs["seconds"] = build.bind("seconds", round(latent.seconds, 3), "float")
        made = build.add("music", node.id, "audio.music", inputs, node.pos)
        result = replace(latent, kind="sound", image=f"{made}.audio", origin=made, model=model)
        return (result, result)
    if model.family not in VIDEO_FAMILIES:
        raise ev.fail(node, f"a video latent sampled with {model.name}, which nodeforge cannot place in a video "
                            "family it runs (Wan, LTX-Video, CogVideoX)")
    if model.bare:
        ev.warn(node, f"{model.name} is a bare diffusion model file: video.generate loads a diffusers folder, an "
                      "alias or a Hub id of the same model (tiny/wan to try it offline), and its own text encoder "
                      "and VAE")
    fps = positive.frame_rate or DEFAULT_FPS[model.family]
    inputs.update(frames=build.bind("frames", latent.frames, "int"), fps=fps,
                  width=build.bind("width", latent.width, "int"), height=build.bind("height", latent.height, "int"))
    if latent.image:
        inputs["image"] = {"from": latent.image}
    made = build.add("video", node.id, "video.generate", inputs, node.pos)
    result = replace(latent, kind="movie", image=f"{made}.video", origin=made, model=model, fps=fps)
    return (result, result)


def _settings(ev: Evaluator, node: ComfyNode) -> tuple[Model, Cond, Cond | None, int, int, float]:
    """Model, prompts, seed, steps and cfg of any sampler class (KSampler, KSamplerAdvanced, SamplerCustom and
    SamplerCustomAdvanced with its guider, noise and sigmas)."""
    if node.class_type == "SamplerCustomAdvanced":
        guider, noise = ev.typed(node, "guider", Guider), ev.typed(node, "noise", Noise)
        sigmas = ev.typed(node, "sigmas", Sigmas)
        return guider.model, guider.positive, guider.negative, noise.seed, sigmas.steps, guider.cfg or 1.0
    model, positive, negative = ev.typed(node, "model", Model), ev.typed(node, "positive", Cond), \
        ev.optional(node, "negative", Cond)
    if node.class_type == "SamplerCustom":
        steps = ev.typed(node, "sigmas", Sigmas).steps
        return model, positive, negative, ev.integer(node, "noise_seed", 0), steps, ev.number(node, "cfg", 8.0)
    seed = ev.integer(node, "noise_seed" if node.class_type == "KSamplerAdvanced" else "seed", 0)
    return model, positive, negative, seed, ev.integer(node, "steps", 20), ev.number(node, "cfg", 8.0)


def decode(ev: Evaluator, node: ComfyNode, latent: Latent) -> tuple[Any, ...]:
    if latent.kind == "movie":
        return (Footage(latent.image, fps=latent.fps),)
    if latent.kind == "sound":
        return (Sound(latent.image),)
    raise ev.fail(node, f"an unsampled {latent.kind} latent has nothing to decode")


def decode_audio(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    latent = ev.typed(node, "samples", Latent)
    if latent.kind != "sound":
        raise ev.fail(node, "only an audio latent a sampler made decodes to sound here", "samples")
    return (Sound(latent.image),)


def frames_of(ev: Evaluator, node: ComfyNode, name: str) -> Footage:
    """A node's frames as a video: a video as it is, a picture batch through ``video.from_images``."""
    found = ev.value(node, name)
    if isinstance(found, Footage):
        return found
    if isinstance(found, Pixels):
        fps = ev.number(node, "fps", ev.number(node, "frame_rate", 16.0))
        made = ev.builder.add("frames", node.id, "video.from_images", {"images": [{"from": found.ref}], "fps": fps},
                              node.pos)
        return Footage(f"{made}.video", fps=fps)
    return ev.typed(node, name, Footage)


def create_video(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (_combined(ev, node, frames_of(ev, node, "images"), "fps"),)


def _combined(ev: Evaluator, node: ComfyNode, video: Footage, rate_name: str) -> Footage:
    """The video with the node's frame rate and sound track, through ``video.combine`` when either changes it."""
    fps = round(ev.number(node, rate_name, video.fps or 16.0), 4)
    sound = ev.optional(node, "audio", Sound)
    if fps == video.fps and sound is None:
        return video
    inputs: dict[str, Any] = {"video": {"from": video.ref}, "fps": fps}
    if sound is not None:
        inputs["audio"] = {"from": sound.ref}
    made = ev.builder.add("combine", node.id, "video.combine", inputs, node.pos)
    return Footage(f"{made}.video", fps=fps)


def save_video(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """Every video save node writes an MP4 with ``video.save`` (the format it asked for is named in a note) and
    becomes a graph output."""
    name = "images" if "images" in node.inputs else "video"
    video = frames_of(ev, node, name)
    if node.class_type in ("SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveWEBM", "VHS_VideoCombine"):
        video = _combined(ev, node, video, "frame_rate" if node.class_type == "VHS_VideoCombine" else "fps")
        ev.warn(node, "written as an MP4 by video.save, not in this node's own format")
    prefix = str(node.inputs.get("filename_prefix") or "video").rsplit("/", 1)[-1]
    clean = "".join(c if c.isalnum() or c in "_.-" else "_" for c in prefix).strip("._-") or "video"
    ev.builder.add("save", node.id, "video.save", {"video": {"from": video.ref}, "name": clean}, node.pos)
    ev.builder.output("video", video.ref, node.pos)
    return ()


def save_audio(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    ev.builder.output("audio", ev.typed(node, "audio", Sound).ref, node.pos)
    return ()


def load_video(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """LoadVideo and VHS_LoadVideo(Path): ``video.load`` of the file (a graph input, like every file)."""
    path = ev.text(node, "file" if "file" in node.inputs else "video")
    made = ev.builder.add("load", node.id, "video.load", {"path": ev.builder.bind_file("video", path)}, node.pos)
    footage = Footage(f"{made}.video", audio=f"{made}.audio")
    if node.class_type == "LoadVideo":
        return (footage,)
    unknown = Lazy(lambda: _unknown(ev, node, "its frame count and video info are only known when it runs"))
    return footage, unknown, Sound(footage.audio), unknown


def video_components(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    video = ev.typed(node, "video", Footage)
    if not video.audio:
        raise ev.fail(node, "the video has no sound track to take apart here", "video")
    rate = Lazy(lambda: _unknown(ev, node, "the frame rate is only known when the video is read"))
    return video, Sound(video.audio), rate


def _unknown(ev: Evaluator, node: ComfyNode, why: str) -> Any:
    raise NotMapped(Unmapped(node.id, node.class_type, why, title=node.title))


HANDLERS: dict[str, Any] = {
    "EmptyHunyuanLatentVideo": empty_video, "EmptyLTXVLatentVideo": empty_video,
    "WanImageToVideo": wan_image_to_video, "Wan22ImageToVideoLatent": wan22_latent,
    "LTXVImgToVideo": ltxv_image_to_video, "LTXVConditioning": ltxv_conditioning, "LTXVScheduler": ltxv_scheduler,
    "LTXVPreprocess": ltxv_preprocess, "CLIPVisionEncode": clip_vision_encode,
    "EmptyLatentAudio": empty_audio, "ConditioningStableAudio": stable_audio_conditioning,
    "VAEDecodeAudio": decode_audio, "CreateVideo": create_video, "GetVideoComponents": video_components,
    "LoadVideo": load_video, "VHS_LoadVideo": load_video, "VHS_LoadVideoPath": load_video,
    "SaveAnimatedWEBP": save_video, "SaveAnimatedPNG": save_video, "SaveWEBM": save_video, "SaveVideo": save_video,
    "VHS_VideoCombine": save_video, "SaveAudio": save_audio, "SaveAudioMP3": save_audio,
    "SaveAudioOpus": save_audio, "PreviewAudio": save_audio,
}
SINKS = ("SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveWEBM", "SaveVideo", "VHS_VideoCombine", "SaveAudio",
         "SaveAudioMP3", "SaveAudioOpus", "PreviewAudio")

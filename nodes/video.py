"""Video nodes: generation with diffusers (text-to-video, image-to-video), combining frames and audio, saving MP4."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import FolderInput, ModelInput, SeedInput, TextInput
from nodeforge.engine.errors import DeviceError, NodeError
from nodeforge.engine.model_source import ModelSource, ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Audio, Image, Video
from nodeforge.nodes.audio_ops import fit_length
from nodeforge.nodes.family_helpers import generator, literal, torch_device
from nodeforge.nodes.models.checkpoints.assemble import find_config, model_files
from nodeforge.nodes.models.checkpoints.inspection import inspect_checkpoint
from nodeforge.nodes.models.diffusion.memory import for_call, memory_record, plan_decode
from nodeforge.nodes.models.diffusion.steps import cancellable, step_callback
from nodeforge.nodes.video_pipelines import (
    FAMILIES,
    VIDEO_MODEL,
    VideoFamily,
    VideoModel,
    family_of_folder,
    load_video_model,
    pipeline_for,
    text_tokens,
)

GENERIC_SIZE_MULTIPLE = 8  # every video VAE we run divides by at least 8


def static_family(name: str, models: ModelSource) -> VideoFamily | None:
    """The family of a model name known without loading anything (tiny models and aliases declare it)."""
    return FAMILIES.get(models.family_of(name) or "")


def open_video_model(name: str, ctx: NodeContext) -> VideoModel:
    def build(resolved: ResolvedModel, device: str) -> VideoModel:
        files = model_files(resolved)
        single = files.single_file or bool(files.parts)
        family = resolved.family if resolved.family in FAMILIES else \
            inspect_checkpoint(resolved.path).family if resolved.path.is_file() else family_of_folder(name,
                                                                                                      resolved.path)
        return load_video_model(name, resolved.path, family, device, ctx.models.memory,
                                files=files if single else None, find_config=find_config(ctx))

    return ctx.models.load(name, build)


class Generate(Node):
    """Generate a video with a diffusers model: text-to-video, or image-to-video when ``image`` is connected and
    the model can (Wan 2.2 TI2V and ``tiny/wan``, Wan I2V, LTX-Video, CogVideoX I2V). Families: Wan (frames 4k+1),
    LTX-Video (8k+1, sizes of 32), CogVideoX (4k+1), AnimateDiff (up to 32 frames)."""

    type_id = "video.generate"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        prompt: str = TextInput(description="What happens in the video")
        negative_prompt: str = Field("", description="What to avoid")
        image: Image | None = Field(None, description="First frame (image-to-video); leave unconnected for text")
        model: str = ModelInput("tiny/wan", kind=VIDEO_MODEL, description="tiny/wan, an alias (wan2.1-t2v-1.3b, ltx-"
                                                                          "video...), a diffusers folder or a Hub id")
        frames: int = Field(17, ge=1, le=1024, description="Frame count (Wan and CogVideoX: 4k+1; LTX: 8k+1)")
        fps: float = Field(16.0, gt=0, le=240, description="Frames per second of the result")
        width: int = Field(256, ge=8, le=4096, description="Width in pixels (a multiple of the model's VAE factor)")
        height: int = Field(256, ge=8, le=4096, description="Height in pixels")
        steps: int = Field(25, ge=1, le=500, description="Denoising steps")
        guidance_scale: float = Field(5.0, ge=0.0, le=50.0, description="Classifier-free guidance (1 = off)")
        seed: int = SeedInput(0, description="Noise seed; -1 draws one (recorded in the run)")

    class Outputs(NodeOutputs):
        video: Video

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        model = literal(literals, bound, self.Inputs, "model")
        if not isinstance(model, str):
            return []
        family = static_family(model, models)
        problems: list[tuple[str | None, str]] = []
        frames = literal(literals, bound, self.Inputs, "frames")
        if family is not None and isinstance(frames, int) and (problem := family.frames_problem(frames)):
            problems.append(("frames", problem))
        for name in ("width", "height"):
            value = literal(literals, bound, self.Inputs, name)
            if not isinstance(value, int):
                continue
            problem = (family.size_problem(name, value) if family is not None else
                       VideoFamily("video", "", None, 1, GENERIC_SIZE_MULTIPLE, None).size_problem(name, value))
            if problem:
                problems.append((name, problem))
        if family is not None and "image" in bound and family.image_to_video is None:
            problems.append(("image", f"{model} is a {family.name} model, which makes video from text only: "
                                      "disconnect image or use an image-to-video model"))
        return problems

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import numpy as np
        import torch

        if not inputs.prompt.strip():
            raise NodeError("the prompt is empty", input="prompt")
        model = open_video_model(inputs.model, ctx)
        with_image = inputs.image is not None
        _check_loaded(model, inputs, with_image)
        pipe = pipeline_for(model, with_image)
        arguments = self._arguments(model, pipe, inputs, ctx)
        decode = plan_decode(pipe.vae, ctx.models.memory, inputs.width, inputs.height, 1,
                             _frames_decoded_at_once(model, inputs.frames))
        ctx.record_detail("memory", memory_record(model.memory, decode))
        try:
            with torch.inference_mode(), for_call(model.pipe, pipe, model.memory, decode), cancellable(ctx, pipe):
                output = pipe(**arguments)
        except torch.OutOfMemoryError:
            raise DeviceError(f"{inputs.model} ran out of device memory at {inputs.width}x{inputs.height}, "
                              f"{inputs.frames} frames: make it smaller or shorter") from None
        frames = np.asarray(output.frames[0] if isinstance(output.frames, list) else output.frames)
        frames = frames[0] if frames.ndim == 5 else frames
        tensor = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(0, 3, 1, 2)
        return self.Outputs(video=Video(tensor.clamp(0, 1), inputs.fps))

    def _arguments(self, model: VideoModel, pipe: Any, inputs: Inputs, ctx: NodeContext) -> dict[str, Any]:
        family = model.family
        tokens, limit = text_tokens(pipe, inputs.prompt)
        limits = [value for value in (limit, family.max_text_tokens) if value]
        limit = min(limits) if limits else None
        if limit is not None and tokens > limit:
            raise NodeError(f"the prompt is {tokens} tokens; {inputs.model} reads at most {limit}", input="prompt")
        accepted = _call_parameters(pipe)
        arguments: dict[str, Any] = {
            "num_frames": inputs.frames, "height": inputs.height, "width": inputs.width,
            "num_inference_steps": inputs.steps, "guidance_scale": inputs.guidance_scale,
            "generator": generator(ctx.device, inputs.seed), "output_type": "np",
            "prompt": inputs.prompt, "negative_prompt": inputs.negative_prompt or None}
        if "callback_on_step_end" in accepted:  # progress, cancellation and step previews per denoising step
            arguments["callback_on_step_end"] = step_callback(ctx, family.name, inputs.steps, model=inputs.model,
                                                              height=inputs.height, width=inputs.width)
        if "max_sequence_length" in accepted and limit is not None:
            arguments["max_sequence_length"] = limit
        if family.takes_frame_rate and "frame_rate" in accepted:
            arguments["frame_rate"] = round(inputs.fps)
        if inputs.image is not None:
            arguments["image"] = _first_frame(inputs.image, inputs.width, inputs.height, ctx)
            if family.name == "wan":
                arguments.update(_wan_prompt_embeds(model, arguments, ctx))
        return arguments


def _frames_decoded_at_once(model: VideoModel, frames: int) -> int:
    """Wan's causal VAE decodes one latent frame (``temporal_step`` frames) at a time; the others all at once."""
    return min(frames, model.temporal_step()) if model.family.name == "wan" else frames


def _call_parameters(pipe: Any) -> frozenset[str]:
    import inspect

    return frozenset(inspect.signature(type(pipe).__call__).parameters)


def _check_loaded(model: VideoModel, inputs: Generate.Inputs, with_image: bool) -> None:
    """The exact limits of the loaded checkpoint, before inference (diffusers would round them silently)."""
    name = inputs.model
    if with_image and not model.image_to_video:
        raise NodeError(f"{name} makes video from text only: disconnect image or use an image-to-video model "
                        "(wan2.2-ti2v-5b, ltx-video)", input="image")
    if not with_image and not model.text_to_video:
        raise NodeError(f"{name} is an image-to-video model: connect an image for the first frame", input="image")
    family = model.family
    step = model.temporal_step()
    rule = VideoFamily(family.name, "", None, step, model.spatial_multiple(), None, model.max_frames())
    if problem := rule.frames_problem(inputs.frames):
        raise NodeError(problem, input="frames")
    for field in ("width", "height"):
        if problem := rule.size_problem(field, getattr(inputs, field)):
            raise NodeError(problem, input=field)
    fixed = model.fixed_size()
    if fixed is not None and (inputs.width, inputs.height) != fixed:
        raise NodeError(f"{name} only makes {fixed[0]}x{fixed[1]} video (its positions are learned); "
                        f"{inputs.width}x{inputs.height} asked", input="width")


def _first_frame(image: Image, width: int, height: int, ctx: NodeContext) -> Any:
    from PIL import Image as PILImage

    if image.batch > 1:
        ctx.warn(f"image holds {image.batch} pictures; the first one starts the video")
    picture = image.to_pil()[0].convert("RGB")
    if picture.size != (width, height):
        ctx.warn(f"image resized from {picture.width}x{picture.height} to {width}x{height} (the video's size)")
        picture = picture.resize((width, height), PILImage.Resampling.LANCZOS)
    return picture


def _wan_prompt_embeds(model: VideoModel, arguments: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Wan's image-to-video pipeline cleans prompts with ftfy, which we do not depend on: encode the prompt with
    the text-to-video pipeline's encoder (the same UMT5 and tokenizer) and pass the embeddings instead."""
    encoder = pipeline_for(model, image=False)
    positive, negative = encoder.encode_prompt(
        prompt=arguments.pop("prompt"), negative_prompt=arguments.pop("negative_prompt"),
        do_classifier_free_guidance=arguments["guidance_scale"] > 1.0,
        max_sequence_length=arguments.get("max_sequence_length", 512), device=torch_device(ctx.device))
    embeds = {"prompt_embeds": positive}
    if negative is not None:
        embeds["negative_prompt_embeds"] = negative
    return embeds


class Combine(Node):
    """Make one video from ``frames`` (an image batch) or a ``video``, with an optional ``audio`` track. The audio
    is trimmed or padded with silence to the video's length (a warning says which and by how much)."""

    type_id = "video.combine"
    version = "1.0.0"

    class Inputs(NodeInputs):
        frames: Image | None = Field(None, description="Frames as an image batch (or connect video)")
        video: Video | None = Field(None, description="A video (or connect frames)")
        audio: Audio | None = Field(None, description="Sound track; fitted to the video's length")
        fps: float | None = Field(None, gt=0, le=240, description="Frames per second; by default the video's own "
                                                                  "(16 for frames)")

    class Outputs(NodeOutputs):
        video: Video

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        given = [name for name in ("frames", "video") if name in bound]
        if len(given) != 1:
            return [("frames", "connect exactly one of frames or video" + (" (both are)" if given else ""))]
        return []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        if inputs.video is not None:
            base = inputs.video
            frames, fps, track = base.frames, inputs.fps or base.fps, base.audio
        elif inputs.frames is not None:
            frames, fps, track = inputs.frames.tensor, inputs.fps or 16.0, None
        else:
            raise NodeError("connect exactly one of frames or video", input="frames")
        if frames.shape[0] == 0:
            raise NodeError("there are no frames", input="video" if inputs.video is not None else "frames")
        if inputs.audio is not None:
            if track is not None:
                ctx.warn("the video's own sound track is replaced by the audio input")
            track = _fitted(inputs.audio, frames.shape[0] / fps, ctx)
        return self.Outputs(video=Video(frames, fps, track))


def _fitted(audio: Audio, seconds: float, ctx: NodeContext) -> Audio:
    if audio.tensor.shape[1] == 0:
        raise NodeError("the audio is empty (0 samples)", input="audio")
    if audio.tensor.shape[0] > 2:
        ctx.warn(f"the audio has {audio.tensor.shape[0]} channels; the MP4 sound track gets them mixed to stereo")
    fitted = fit_length(audio, round(seconds * audio.sample_rate))
    if fitted.trimmed:
        ctx.warn(f"audio trimmed by {fitted.trimmed:.2f} s ({audio.seconds:.2f} s) to the video's {seconds:.2f} s")
    if fitted.padded:
        ctx.warn(f"audio padded with {fitted.padded:.2f} s of silence ({audio.seconds:.2f} s) to the video's "
                 f"{seconds:.2f} s")
    return fitted.audio


class Save(Node):
    """Write a video as MP4 (H.264, AAC sound when it has a track) into ``folder`` (default: the data dir's
    outputs folder) as ``name``.mp4, never overwriting: a number is added when the name is taken."""

    type_id = "video.save"
    version = "1.0.0"
    side_effects = True

    class Inputs(NodeInputs):
        video: Video
        name: str = Field("video", min_length=1, description="File name without .mp4")
        folder: str = FolderInput("", description="Folder to write into; empty: <data dir>/outputs")

    class Outputs(NodeOutputs):
        path: str

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        name = literals.get("name")
        if isinstance(name, str) and (Path(name).name != name or name in (".", "..")):
            return [("name", f"name '{name}' must be a plain file name (use folder for the place)")]
        return []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        from nodeforge.engine.media_io import write_mp4

        folder = ctx.files.write_folder(inputs.folder, input="folder")
        stem = inputs.name.removesuffix(".mp4")
        target, number = folder / f"{stem}.mp4", 1
        while target.exists():
            number += 1
            target = folder / f"{stem}-{number}.mp4"
        height, width = inputs.video.frames.shape[2:]
        if height % 2 or width % 2:
            ctx.warn(f"H.264 needs even sizes: {width}x{height} is padded to {width + width % 2}x"
                     f"{height + height % 2} by repeating the edge")
        write_mp4(inputs.video, target)
        return self.Outputs(path=str(target))

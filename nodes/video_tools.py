"""Video plumbing: ``video.load``, ``video.frames``, ``video.from_images`` and ``video.upscale``.

``video.load`` reads MP4, WebM, GIF, MOV (anything the FFmpeg inside PyAV decodes) by path or upload id, keys its
cache entry on the file's content like ``image.load``, and measures the file from its header against the media
limits before decoding a frame. ``video.upscale`` runs the ``image.upscale`` models one frame at a time (tiled
within a frame), so device memory holds one frame and its result, never the whole clip; the upscaled frames are
gathered on the CPU. The frame rate and the sound track pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import FileInput, ModelInput
from nodeforge.engine.errors import GraphInputError, NodeError
from nodeforge.engine.files import FileAccess
from nodeforge.engine.limits import video_problem
from nodeforge.engine.media_io import file_digest, read_video
from nodeforge.engine.model_source import ModelSource
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Audio, Image, Video
from nodeforge.nodes.family_helpers import torch_device
from nodeforge.nodes.image_tools import ARTIFACT_REFERENCE
from nodeforge.nodes.upscale import UPSCALER, load_upscale_model, upscale_channels

ACCEPTED = "accepted: MP4, WebM, GIF, MOV and other containers FFmpeg reads"


class Load(Node):
    """Load a video file (MP4, WebM, GIF, MOV) or an uploaded artifact, with its sound track. ``audio`` is the
    track alone, and empty (None) when the file has none: an optional audio input such as ``video.combine``'s
    then gets no sound. Cached by the file's content; refused from its header when over the frame, pixel or
    sound-length limits."""

    type_id = "video.load"
    version = "1.0.0"

    class Inputs(NodeInputs):
        path: str = FileInput(description="A file path (relative to the working folder or the graph's folder; on a "
                                          "server, inside the folders it allows), or an uploaded artifact id")

    class Outputs(NodeOutputs):
        video: Video = Field(description="The frames at the file's frame rate, with its sound track")
        audio: Audio | None = Field(description="The sound track; None when the file has none")

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        path = literals.get("path")
        if isinstance(path, str) and not path.strip():
            return [("path", "the path is empty: give a video file or an uploaded artifact id")]
        return []

    def fingerprint(self, literals: Mapping[str, Any], env: GraphEnv) -> str | None:
        reference = literals.get("path")
        if not isinstance(reference, str):
            return None
        match = ARTIFACT_REFERENCE.match(reference)
        if match:
            return f"artifact:{match.group(1)}"
        path = FileAccess(search=tuple(env.library.folders)).find_file(reference)
        return "sha256:" + file_digest(path) if path is not None else None

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import av

        path = ctx.files.read(inputs.path, input="path")
        limits = ctx.files.limits
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise NodeError(f"{path.name} has no video stream; {ACCEPTED}", input="path")
            problem = video_problem(path, limits)
            if problem:
                raise NodeError(f"{path.name}: {problem}", input="path")
            video = read_video(path, limits, ctx.progress)
        except GraphInputError as exc:  # over the frame or sound limits past the header, or no frames at all
            raise NodeError(str(exc), input="path") from None
        except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
            reason = str(exc).replace(str(path), path.name) or type(exc).__name__
            raise NodeError(f"cannot decode {path.name} as a video ({reason}); {ACCEPTED}", input="path") from None
        # the track alone is its own copy: the disk cache writes safetensors, which refuse shared tensors
        track = Audio(video.audio.tensor.clone(), video.audio.sample_rate) if video.audio is not None else None
        return self.Outputs(video=video, audio=track)


class Frames(Node):
    """The frames of a video as one image batch ``[frames, C, H, W]``, for any image node (the sound track and
    frame rate stay with the video; ``video.from_images`` makes a video again)."""

    type_id = "video.frames"
    version = "1.0.0"

    class Inputs(NodeInputs):
        video: Video

    class Outputs(NodeOutputs):
        images: Image = Field(description="One image per frame, in order")

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        frames = inputs.video.frames
        if frames.shape[0] == 0:
            raise NodeError("the video has no frames", input="video")
        if frames.shape[1] not in (1, 3, 4):
            raise NodeError(f"the video's frames have {frames.shape[1]} channels; images have 1, 3 or 4",
                            input="video")
        return self.Outputs(images=Image(frames))


def _listed(value: Any) -> Any:
    """One batch linked or given straight to a list input is a list of one."""
    return [value] if isinstance(value, Image) else value


class FromImages(Node):
    """A video from pictures, one frame per picture at ``fps`` (no sound: connect ``video.combine`` for that).
    ``images`` is a list whose items are links (each a picture or a batch, taken in order), or one batch such as
    ``video.frames``' output; every picture must have the size and channels of the first."""

    type_id = "video.from_images"
    version = "1.1.0"

    class Inputs(NodeInputs):
        images: Annotated[list[Image], BeforeValidator(_listed)] = Field(
            description="The frames, in order: a list of pictures or batches, or one batch (e.g. from video.frames)")
        fps: float = Field(16.0, gt=0, le=240, description="Frames per second")

    class Outputs(NodeOutputs):
        video: Video

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        parts = [image for image in inputs.images if image.batch > 0]
        if not parts:
            raise NodeError("there are no images", input="images")
        first = tuple(parts[0].tensor.shape[1:])
        for index, image in enumerate(inputs.images):
            if image.batch and tuple(image.tensor.shape[1:]) != first:
                raise NodeError(f"image {index + 1} is {_shape(image.tensor.shape[1:])}; the first is "
                                f"{_shape(first)}: every frame of a video has one size", input="images")
        frames = parts[0].tensor if len(parts) == 1 else torch.cat([image.tensor.to(parts[0].tensor.device)
                                                                    for image in parts])
        return self.Outputs(video=Video(frames, inputs.fps))


def _shape(shape: Any) -> str:
    channels, height, width = (int(n) for n in shape)
    return f"{width}x{height} with {channels} channel(s)"


class Upscale(Node):
    """Upscale a video frame by frame with a super-resolution model (realesr-animevideov3 by default: real
    weights, offline, fast), each frame in tiles of ``tile`` input pixels when ``tile`` > 0. Keeps the frame rate
    and the sound track; reports progress once per frame."""

    type_id = "video.upscale"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        video: Video = Field(description="The video to upscale")
        model: str = ModelInput("realesr-animevideov3", kind=UPSCALER,
                                description="realesr-animevideov3, realesrgan-x4plus, realesrgan-x4plus-anime, "
                                            "tiny/esrgan, or a .pth/.safetensors file")
        tile: int = Field(0, ge=0, le=8192, description="Tile size in input pixels; 0 processes whole frames")
        overlap: int = Field(16, ge=0, le=512, description="Context pixels around each tile (tile > 0)")

    class Outputs(NodeOutputs):
        video: Video

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        source = inputs.video
        count, channels, height, width = (int(n) for n in source.frames.shape)
        if count == 0:
            raise NodeError("the video has no frames", input="video")
        if channels not in (1, 3, 4):
            raise NodeError(f"the video's frames have {channels} channels; the upscaler takes 1, 3 or 4",
                            input="video")
        model = load_upscale_model(inputs.model, ctx)
        device = torch_device(ctx.device)
        scale = model.scale
        out = torch.empty(count, channels, height * scale, width * scale, dtype=torch.float32)

        def within_frame(done: int, total: int) -> None:
            ctx.check_cancelled()

        for index in range(count):
            ctx.check_cancelled()
            frame = source.frames[index:index + 1].to(device)
            out[index:index + 1] = upscale_channels(model, frame, inputs.tile, inputs.overlap, within_frame).cpu()
            ctx.progress(index + 1, count)
        return self.Outputs(video=Video(out, source.fps, source.audio))

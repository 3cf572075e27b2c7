"""The music node: text to music and sound with MusicGen (transformers) or Stable Audio Open (diffusers).

The generator follows from the model: ``musicgen-small``, ``musicgen-stereo-small`` (2 channels),
``musicgen-melody`` (also follows a melody), ``stable-audio-open`` (stereo 44.1 kHz), their tiny stand-ins, a
folder or a Hub id. The clip is exactly ``seconds`` long at the model's own sampling rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, SeedInput, TextInput
from nodeforge.engine.errors import NodeError
from nodeforge.engine.model_source import ModelSource, ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Audio
from nodeforge.nodes.audio_ops import fit_length, loudness_problem
from nodeforge.nodes.family_helpers import literal
from nodeforge.nodes.music_backends import (
    FAMILIES,
    MELODY,
    MUSIC_GENERATOR,
    STABLE_AUDIO,
    MusicGen,
    Request,
    StableAudio,
    load_musicgen,
    load_stable_audio,
    music_family,
)

MAX_SECONDS = 300.0  # beyond what any of these models makes; each model's own limit is checked when it is loaded

Generator = MusicGen | StableAudio


def open_generator(name: str, ctx: NodeContext) -> Generator:
    """The music generator for model ``name``, loaded on the node's device."""
    def build(resolved: ResolvedModel, device: str) -> Generator:
        family = music_family(name, resolved.path, resolved.family)
        if family == STABLE_AUDIO:
            return load_stable_audio(name, resolved.path, device)
        return load_musicgen(name, resolved.path, family, device)

    return ctx.models.load(name, build)


class Music(Node):
    """Make music or sound from a description: MusicGen (``musicgen-small``, ``musicgen-stereo-small`` in stereo,
    ``musicgen-melody``, which also follows the tune of a connected ``melody``) or Stable Audio Open
    (``stable-audio-open``: stereo 44.1 kHz sound effects and music, with ``steps`` and ``negative_prompt``).
    MusicGen reports progress per generated token, Stable Audio per denoising step."""

    type_id = "audio.music"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        prompt: str = TextInput(description="The music or sound to make")
        model: str = ModelInput("musicgen-small", kind=MUSIC_GENERATOR,
                                description="musicgen-small, musicgen-stereo-small, musicgen-melody, stable-audio-"
                                            "open, tiny/musicgen, a folder or a Hub id")
        seconds: float = Field(8.0, gt=0.0, le=MAX_SECONDS, description="Length of the clip in seconds (MusicGen "
                                                                         "was trained on up to 30 s, Stable Audio "
                                                                         "Open makes up to 47 s)")
        guidance_scale: float = Field(3.0, ge=0.0, le=30.0, description="Classifier-free guidance (1 or less: off; "
                                                                        "MusicGen 3, Stable Audio about 7)")
        seed: int = SeedInput(0, description="Sampling seed; -1 draws one (recorded in the run)")
        melody: Audio | None = Field(None, description="A tune to follow (MusicGen Melody models only)")
        negative_prompt: str = Field("", description="What to avoid (Stable Audio)")
        steps: int = Field(100, ge=1, le=1000, description="Denoising steps (Stable Audio)")

    class Outputs(NodeOutputs):
        audio: Audio

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        model = literal(literals, bound, self.Inputs, "model")
        if not isinstance(model, str):
            return []
        family = models.family_of(model)
        if "melody" in bound and family in FAMILIES and family != MELODY:
            return [("melody", f"{model} is a {family} model, which takes no melody: disconnect melody or use a "
                               "MusicGen Melody model (musicgen-melody)")]
        return []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        if not inputs.prompt.strip():
            raise NodeError("the prompt is empty", input="prompt")
        if inputs.melody is not None and (problem := loudness_problem(inputs.melody)):
            raise NodeError(f"the melody cannot be followed: {problem}", input="melody")
        music = open_generator(inputs.model, ctx)
        if inputs.seconds > music.max_seconds:
            raise NodeError(f"{inputs.model} makes at most {music.max_seconds:.2f} s; asked for "
                            f"{inputs.seconds:g} s", input="seconds")
        request = Request(prompt=inputs.prompt, negative_prompt=inputs.negative_prompt, seconds=inputs.seconds,
                          guidance_scale=inputs.guidance_scale, steps=inputs.steps, seed=inputs.seed,
                          melody=inputs.melody)
        audio = music.generate(request, ctx.progress)
        return self.Outputs(audio=fit_length(audio, round(inputs.seconds * music.sample_rate)).audio)

"""How a diffusion pipeline (image or video) sits on its device, and how its VAE decodes one run.

Each device has a memory setting (``--memory-mode``, ``engine.memory_modes``):

- ``gpu``: the whole pipeline resident on the device (``pipe.to(device)``).
- ``offload``: diffusers' model CPU offload; the pipeline lives in CPU RAM and each component (text encoder,
  denoiser, VAE) comes to the device when it runs, one at a time.
- ``sequential``: one layer at a time. diffusers' group offloading at leaf level (``enable_group_offload``, with a
  CUDA stream prefetching the next layer on CUDA) where every component supports it, else accelerate's sequential
  CPU offload on CUDA, else model offload (the plan says so).
- ``auto``: from the model's size (parameter and buffer bytes of its components at the load dtype, measured in CPU
  RAM before anything moves) against the device's budget: the whole model fits with ``HEADROOM`` to spare -> gpu;
  its largest component does -> offload; else sequential.
- ``+fp8``: the denoiser's weights stored as float8_e4m3fn, each layer upcast to the pipeline's dtype when it runs
  (diffusers' layerwise casting), before the sizes are measured.

``plan_memory`` decides (pure), ``apply_memory_plan`` does it, ``place_pipeline`` is both: what the loaders call.
Per run, ``plan_decode`` switches VAE slicing and tiling on when the decode (``vae_decode_bytes``) would not fit
in what the device has free, and ``for_call`` applies that for one pipeline call. The plan and the decode decision
go into the node's record (``memory_record``).

Offloading saves device memory on CUDA only. On a CPU device (the virtual devices of the tests) the same hooks run
and move weights from CPU RAM to CPU RAM: the code paths are real, the memory is not saved.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from nodeforge.engine.memory_modes import DeviceMemory
from nodeforge.engine.models import module_nbytes

Mode = Literal["gpu", "offload", "sequential"]
HEADROOM = 0.2
"""Share of a device's budget ``auto`` keeps free for activations (attention, the VAE decode) and other models."""
DECODE_LIVE_MAPS = 3
"""Full-resolution feature maps a VAE decoder holds at once at its peak (see ``vae_decode_bytes``)."""
DENOISERS = ("unet", "transformer", "transformer_2")
MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Abilities:
    """What the installed diffusers can do with this pipeline on this device."""

    model_offload: bool  # the pipeline declares its components' order (``model_cpu_offload_seq``)
    group_offload: bool  # every diffusers component supports group offloading
    streams: bool  # CUDA: group offloading prefetches the next layer on a side stream
    sequential_hooks: bool  # accelerate's sequential offload works here (CUDA)


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """What was decided for one loaded pipeline, with the numbers it was decided from (bytes)."""

    mode: Mode
    asked: str  # the device's setting: auto, gpu, offload or sequential, with +fp8
    how: str  # the API that does it
    reason: str
    budget: int
    model_bytes: int  # every component, at the dtype it is stored in
    largest_component: str
    largest_bytes: int
    layer_bytes: int  # the largest single layer (what sequential offload brings at a time)
    device_bytes: int  # weights on the device at the peak in this mode: what the model manager accounts
    fp8: tuple[str, ...] = ()  # components whose weights are stored in fp8

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fp8"] = list(self.fp8)
        return data


@dataclass(frozen=True, slots=True)
class DecodePlan:
    """VAE slicing and tiling for one run, and the estimate they were decided from (bytes)."""

    width: int
    height: int
    batch: int
    frames: int  # frames decoded at once per batch item (1 for pictures)
    decode_bytes: int  # ``vae_decode_bytes`` of the whole batch at once
    free: int  # the device's budget minus what is held on it
    slicing: bool
    tiling: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mib(nbytes: int) -> str:
    return f"{nbytes / MiB:.1f} MiB"


def component_bytes(pipe: Any) -> dict[str, int]:
    """Bytes of each torch module of a pipeline (parameters and buffers, at the dtype they are stored in)."""
    return {name: module_nbytes(module) for name, module in pipe.components.items() if _is_module(module)}


def largest_layer_bytes(pipe: Any) -> int:
    """The largest parameters and buffers any one module holds itself (not counting its children): what leaf-level
    offloading brings to the device at a time."""
    largest = 0
    for module in pipe.components.values():
        if not _is_module(module):
            continue
        for layer in module.modules():
            own = sum(t.numel() * t.element_size() for t in (*layer.parameters(recurse=False),
                                                               *layer.buffers(recurse=False)))
            largest = max(largest, own)
    return largest


def abilities_of(pipe: Any, device: str) -> Abilities:
    """What can be done with ``pipe`` on ``device`` (a torch device name). accelerate's sequential offload moves
    weights through the meta device and fails on the CPU with this torch, so it counts only on CUDA."""
    from diffusers import ModelMixin

    modules = [module for module in pipe.components.values() if _is_module(module)]
    group = all(getattr(module, "_supports_group_offloading", True) for module in modules
                if isinstance(module, ModelMixin))
    cuda = device.startswith("cuda")
    return Abilities(model_offload=getattr(pipe, "model_cpu_offload_seq", None) is not None, group_offload=group,
                     streams=cuda, sequential_hooks=cuda)


def plan_memory(sizes: Mapping[str, int], layer_bytes: int, memory: DeviceMemory, abilities: Abilities, *,
                fp8: Sequence[str] = ()) -> MemoryPlan:
    """The mode for a pipeline of components ``sizes`` on a device (its budget and setting): pure arithmetic."""
    total = sum(sizes.values())
    largest = max(sizes, key=lambda name: sizes[name]) if sizes else ""
    largest_bytes = sizes.get(largest, 0)
    usable = int(memory.budget * (1 - HEADROOM))
    asked = memory.setting.mode
    if asked == "auto":
        if total <= usable:
            mode: Mode = "gpu"
            reason = f"the model ({mib(total)}) fits in {1 - HEADROOM:.0%} of the budget ({mib(memory.budget)})"
        elif largest_bytes <= usable:
            mode = "offload"
            reason = (f"the model ({mib(total)}) does not fit in {1 - HEADROOM:.0%} of the budget "
                      f"({mib(memory.budget)}); its largest component, {largest} ({mib(largest_bytes)}), does")
        else:
            mode = "sequential"
            reason = (f"not even the largest component, {largest} ({mib(largest_bytes)}), fits in "
                      f"{1 - HEADROOM:.0%} of the budget ({mib(memory.budget)})")
    else:
        mode, reason = asked, f"--memory-mode {memory.setting}"
    mode, how, note = _how(mode, abilities)
    device_bytes = {"gpu": total, "offload": largest_bytes,
                    "sequential": layer_bytes * (2 if abilities.streams and abilities.group_offload else 1)}[mode]
    return MemoryPlan(mode, str(memory.setting), how, reason + note, memory.budget, total, largest, largest_bytes,
                      layer_bytes, device_bytes, tuple(fp8))


def _how(mode: Mode, abilities: Abilities) -> tuple[Mode, str, str]:
    """The API for a mode, falling back to the next mode that can run here (the note says why)."""
    if mode == "sequential":
        if abilities.group_offload:
            stream = ", CUDA stream" if abilities.streams else ""
            return "sequential", f"enable_group_offload(leaf_level{stream})", ""
        if abilities.sequential_hooks:
            return "sequential", "enable_sequential_cpu_offload", ""
        mode = "offload"
        note = "; sequential offload is not available for this pipeline here, so model offload instead"
    else:
        note = ""
    if mode == "offload":
        if abilities.model_offload:
            return "offload", "enable_model_cpu_offload", note
        return "gpu", "to(device)", note + "; this pipeline cannot offload its components, so all on the device"
    return "gpu", "to(device)", note


def apply_memory_plan(pipe: Any, plan: MemoryPlan, device: str) -> None:
    """Place ``pipe`` (in CPU RAM) on ``device`` (a torch device name) as planned."""
    import torch

    if plan.how == "to(device)":
        if device != "cpu":
            pipe.to(device)
    elif plan.how == "enable_model_cpu_offload":
        pipe.enable_model_cpu_offload(device=device)
    elif plan.how == "enable_sequential_cpu_offload":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                  offload_type="leaf_level", use_stream=device.startswith("cuda"))


def store_fp8(pipe: Any, device: str) -> tuple[str, ...]:
    """Store the denoisers' weights as float8_e4m3fn with layerwise casting (compute stays in their dtype); the
    components cast. None is cast on MPS (no fp8 tensors) or where a denoiser lacks ``enable_layerwise_casting``."""
    import torch

    if device.startswith("mps"):
        return ()
    cast = []
    for name in DENOISERS:
        module = getattr(pipe, name, None)
        if module is not None and callable(getattr(module, "enable_layerwise_casting", None)):
            compute: torch.dtype = module.dtype
            module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute)
            cast.append(name)
    return tuple(cast)


def place_pipeline(pipe: Any, device: str, memory: DeviceMemory | None) -> MemoryPlan | None:
    """Put a pipeline loaded in CPU RAM on ``device`` (a torch device name) by the device's memory setting; the plan
    it followed. Without a setting (``memory`` None) the whole pipeline goes to the device, as before modes."""
    if memory is None:
        if device != "cpu":
            pipe.to(device)
        return None
    fp8 = store_fp8(pipe, device) if memory.setting.fp8 else ()
    plan = plan_memory(component_bytes(pipe), largest_layer_bytes(pipe), memory, abilities_of(pipe, device),
                       fp8=fp8)
    if memory.setting.fp8 and not fp8:
        plan = replace(plan, reason=plan.reason + "; +fp8 is not supported for this pipeline on this device")
    apply_memory_plan(pipe, plan, device)
    return plan


def vae_channels(vae: Any) -> tuple[int, ...]:
    """A VAE's feature widths from the full-resolution end (``block_out_channels``, or Wan's base_dim x dim_mult)."""
    config = vae.config
    channels = getattr(config, "block_out_channels", None)
    if channels:
        return tuple(int(c) for c in channels)
    base, mult = getattr(config, "base_dim", None), getattr(config, "dim_mult", None)
    if base and mult:
        return tuple(int(base) * int(m) for m in mult)
    return (128,)


def vae_decode_bytes(width: int, height: int, batch: int, channels: Sequence[int], element_size: int,
                     frames: int = 1) -> int:
    """Estimated peak activation bytes of one VAE decode of ``batch`` pictures (``frames`` frames each, for a
    video VAE decoding that many at once) of ``width`` x ``height`` pixels.

    A decoder grows the latent back to full resolution, so its last stages dominate: the upsampler into full
    resolution and the first block there work on the widest full-resolution feature map (``channels[1]`` wide in
    ``block_out_channels`` order, ``channels[0]`` for a one-level VAE) and hold about ``DECODE_LIVE_MAPS`` such maps
    at once (the block's input, its normalised activation and the convolution's output). Attention at latent
    resolution is left out: memory-efficient attention keeps it small on GPUs."""
    widest = max(channels[:2]) if channels else 128
    return DECODE_LIVE_MAPS * width * height * widest * element_size * max(batch, 1) * max(frames, 1)


def plan_decode(vae: Any, memory: DeviceMemory, width: int, height: int, batch: int,
                frames: int = 1) -> DecodePlan:
    """Slicing when the batch decoded at once would not fit in what the device has free (one item at a time),
    tiling when even one item would not (tiles at a time); each only where the VAE has it."""
    element = next(iter(vae.parameters())).element_size()
    one = vae_decode_bytes(width, height, 1, vae_channels(vae), element, frames)
    whole = one * max(batch, 1)
    free = memory.free
    slicing = batch > 1 and whole > free and callable(getattr(vae, "enable_slicing", None))
    tiling = one > free and callable(getattr(vae, "enable_tiling", None))
    return DecodePlan(width, height, batch, frames, whole, free, slicing, tiling)


def picture_batch(call: Mapping[str, Any]) -> int:
    """Pictures one image pipeline call decodes: its prompts (one, or a list) times ``num_images_per_prompt``."""
    prompt = call.get("prompt")
    prompts = len(prompt) if isinstance(prompt, list | tuple) else 1
    return max(prompts, 1) * int(call.get("num_images_per_prompt") or 1)


@contextmanager
def for_call(loaded: Any, pipe: Any, plan: MemoryPlan | None, decode: DecodePlan | None) -> Iterator[None]:
    """One call of ``pipe`` (the loaded pipeline, or one built over its components): the VAE's slicing and tiling as
    decided, put back afterwards (the pipeline is shared between runs); and, for a pipeline built over an offloaded
    one, every component offloaded again afterwards, as the loaded pipeline does after its own calls."""
    vae = getattr(pipe, "vae", None)
    before = (bool(getattr(vae, "use_slicing", False)), bool(getattr(vae, "use_tiling", False)))
    if vae is not None and decode is not None:
        _vae_modes(vae, decode.slicing, decode.tiling)
    try:
        yield
    finally:
        if vae is not None and decode is not None:
            _vae_modes(vae, *before)
        if plan is not None and plan.how == "enable_model_cpu_offload" and pipe is not loaded:
            loaded.maybe_free_model_hooks()


def _vae_modes(vae: Any, slicing: bool, tiling: bool) -> None:
    for wanted, on, off in ((slicing, "enable_slicing", "disable_slicing"), (tiling, "enable_tiling",
                                                                               "disable_tiling")):
        switch = getattr(vae, on if wanted else off, None)
        if callable(switch):
            switch()


def memory_record(plan: MemoryPlan | None, decode: DecodePlan | None) -> dict[str, Any]:
    """The ``memory`` detail of a node's record: the plan (mode, API, reason, sizes) and this run's VAE decode."""
    data: dict[str, Any] = plan.to_json() if plan is not None else {"mode": "gpu", "asked": None}
    if decode is not None:
        data["vae"] = decode.to_json()
    return data


class PlacedPipeline:
    """What the model manager reads of a loaded pipeline (``DiffusionModel``, ``VideoModel``) placed by a plan: the
    bytes it keeps on the device, whether it can be parked in CPU RAM (not with offload hooks, which are bound to
    the device), and a move that leaves offloaded pipelines alone."""

    pipe: Any
    memory: MemoryPlan | None

    @property
    def device_nbytes(self) -> int | None:
        return self.memory.device_bytes if self.memory is not None else None

    @property
    def parkable(self) -> bool:
        return self.memory is None or self.memory.mode == "gpu"

    def move_pipe(self, device: str) -> None:
        if self.parkable:
            self.pipe.to(device)


def _is_module(value: Any) -> bool:
    return callable(getattr(value, "parameters", None)) and callable(getattr(value, "modules", None))


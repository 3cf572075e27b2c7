"""The Hugging Face Hub as the resolver uses it: whether it is offline, what the local cache holds, and snapshots
(downloaded only when online, never silently)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nodeforge.engine.errors import ModelResolveError, first_line

HUB_IGNORE = ["*.ckpt", "*.onnx", "*.onnx_data", "*.msgpack", "*.h5", "*.ot", "*.tflite", "flax_model*",
              "tf_model*", "openvino*", "*.gguf"]


def hub_offline() -> bool:
    if any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE",
                                                                                  "TRANSFORMERS_OFFLINE")):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cached(repo: str, revision: str | None, file: str | None = None) -> bool:
    """Whether the Hub snapshot (and ``file`` in it, when given) is in the local Hugging Face cache (nothing is
    downloaded)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss (not cached, no such revision, unreadable cache) means: not here
        return False
    return file is None or (folder / file).exists()


def hub_snapshot(repo: str, revision: str | None, allow: Sequence[str] = (), alias: str | None = None) -> Path:
    """A local snapshot of a Hub repository: from the Hugging Face cache, else downloaded when online (only the
    files matching ``allow`` when given; the offline error then names the ``alias`` that knows them)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, revision=revision, local_files_only=True))
        if not allow or all(any(folder.glob(pattern)) for pattern in allow):
            return folder
    except Exception:  # noqa: BLE001 - any miss in the local cache means: download, or explain
        pass
    shown = repo + (f"@{revision}" if revision else "")
    if hub_offline():
        raise ModelResolveError(
            f"model '{shown}' is not in the local Hugging Face cache and the Hub is offline (HF_HUB_OFFLINE). "
            f"Get the weights while online with `nodeforge models get {alias or shown}` (or `hf download "
            f"{repo}{''.join(f' --include {pattern!r}' for pattern in allow)}`), or give a local folder or file "
            "path instead")
    try:
        if allow:
            return Path(snapshot_download(repo, revision=revision, allow_patterns=list(allow)))
        return Path(snapshot_download(repo, revision=revision, ignore_patterns=HUB_IGNORE))
    except Exception as exc:  # noqa: BLE001 - network, auth and not-found errors all become one clear message
        raise ModelResolveError(f"model '{shown}' could not be downloaded from the Hugging Face Hub: "
                                f"{type(exc).__name__}: {first_line(exc)}. Check the id, your network and "
                                "(for gated models) `hf auth login`, or give a local path") from None

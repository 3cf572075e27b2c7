"""nodeforge's built-in node families, one module each. The registry reaches this package through the
``nodeforge.nodes`` entry point and imports exactly the modules listed here (nothing under ``nodes/`` is scanned):
a new family module goes into ``NODE_MODULES``, and a test fails when a module defines a node and is not listed."""

NODE_MODULES = (
    "audio",
    "caption",
    "compare",
    "control",
    "control_images",
    "graph",
    "image",
    "image_tools",
    "inpaint",
    "llm",
    "masks",
    "music",
    "numbers",
    "scores",
    "text",
    "upscale",
    "video",
    "video_tools",
    "vision",
)

"""Checkpoints in and out: reading users' single files and component files into pipelines (with the bundled
configurations), converting pipelines back to the original layout and GGUF, and GGUF language models."""

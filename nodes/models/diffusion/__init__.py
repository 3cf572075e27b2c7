"""The diffusion runtime the image and video nodes share: pipelines, schedulers and LoRAs, controls and
IP-Adapters, VAE overrides, placement in device memory, the step callback and its previews."""

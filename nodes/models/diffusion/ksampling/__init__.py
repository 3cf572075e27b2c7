"""ComfyUI's samplers and sigma schedules, so a seed draws the same picture as in ComfyUI.

``spaces`` holds the model's noise space (sigmas of a discrete noise-prediction model, or of a flow-matching one),
``schedules`` the sigma schedules (normal, karras, exponential, ...), ``noise`` the random draws ComfyUI makes
(the start noise, the fresh per-step generator of ancestral samplers, the Brownian tree of SDE samplers),
``samplers_*`` the k-diffusion samplers written as generators that ask for one denoised prediction at a time
(``walk``), ``sampler_table`` ComfyUI's names for them, and ``pipeline_scheduler`` the diffusers scheduler interface
that lets a diffusers pipeline drive them.
"""

"""Neighbor2Neighbor: the self-supervised denoiser of the pipeline (stages 2 and 3).

- :mod:`.unet` — ``UNet`` with the reference ``state_dict`` keys;
- :mod:`.subsample` — ``generate_mask_pair`` / ``generate_subimages`` (neighbour sub-sampler);
- :mod:`.loss` — ``n2n_loss``, ``gamma_schedule``;  :mod:`.metrics` — ``psnr_255``, ``ssim``;
- :mod:`.train` — ``python -m neighbor2neighbor.train``;
- :mod:`.denoise` — ``Denoiser``, ``denoise_tensor``, ``python -m neighbor2neighbor.denoise``.
"""

"""Quality: PSNR/SSIM per image, classical baseline denoisers, image grids for people."""

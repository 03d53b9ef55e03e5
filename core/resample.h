/* Image resampling for checkpoint adaptation (fine-tuning at another input
 * size: the patch-grid position embedding, issue 14). */
#ifndef EWA_RESAMPLE_H
#define EWA_RESAMPLE_H

/* Bicubic resampling of a (H,W,C) channel-last grid to (OH,OW,C), exactly the
 * arithmetic of PyTorch's F.interpolate(x, size=(OH,OW), mode='bicubic',
 * align_corners=False) (antialias=False) on the (C,H,W) tensor: source
 * coordinate s = (dst + 0.5) * in/out - 0.5, Keys' cubic convolution with
 * A = -0.75 on the 4 neighbours floor(s)-1 .. floor(s)+2, indices clamped to
 * the border (aten/src/ATen/native/UpSample.h: cubic_convolution1/2,
 * upsample_get_value_bounded). Computed in double, stored as float.
 * Note: timm's resample_abs_pos_embed passes antialias=True, which differs
 * from this only when a grid shrinks. H, W, OH, OW >= 1. */
void resample_bicubic(float *out, const float *in, int H, int W, int C, int OH, int OW);

#endif

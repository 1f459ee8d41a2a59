"""cnnrecon.ops: forward operators (how a clean image is observed)."""

from cnnrecon.ops.base import ForwardOperator, observe_batch
# The functions `blur` and `radon` are not re-exported: their names are their modules'.
from cnnrecon.ops.blur import (Blur, blur_adjoint, gaussian_kernel, kernel_from_file, motion_kernel,
                               richardson_lucy_baseline, wiener_baseline)
from cnnrecon.ops.jpeg import JpegCompression, jpeg_compress
from cnnrecon.ops.masks import RandomPixelMask, RegionMask, random_boxes_mask, random_strokes_mask
from cnnrecon.ops.mixture import DegradationMixture
from cnnrecon.ops.noise import GaussianNoise, PoissonGaussianNoise, PoissonNoise
from cnnrecon.ops.phantoms import random_ellipses, shepp_logan
from cnnrecon.ops.radon import ParallelBeamCT, backproject, fbp
from cnnrecon.ops.resize import BicubicDownsample, imresize, imresize_adjoint, modcrop

__all__ = ['ForwardOperator', 'observe_batch', 'GaussianNoise', 'PoissonNoise', 'PoissonGaussianNoise',
           'RandomPixelMask', 'RegionMask', 'random_boxes_mask', 'random_strokes_mask',
           'BicubicDownsample', 'imresize', 'imresize_adjoint', 'modcrop', 'Blur',
           'blur_adjoint', 'gaussian_kernel', 'motion_kernel', 'kernel_from_file', 'wiener_baseline',
           'richardson_lucy_baseline', 'JpegCompression', 'jpeg_compress', 'ParallelBeamCT', 'backproject',
           'fbp', 'shepp_logan', 'random_ellipses', 'DegradationMixture']

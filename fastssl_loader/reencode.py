"""When the writer's ``auto`` mode should re-encode a source JPEG instead of storing it untouched.

Why: a loader decodes every stored JPEG once per epoch. DCT-scaled and region-limited decoding skip the
IDCT, upsampling and colour conversion of what the views do not need, but not the entropy (Huffman)
decoding of the rows above and inside the region, and for a progressive JPEG not of any row (all scans are
entropy-decoded into a whole-image coefficient buffer). So on big photos with many bits per pixel, or
progressive ones, decoding dwarfs the views whatever the loader does, while the same pixels re-encoded as a
baseline 4:2:0 q90 JPEG (the writer's ``jpeg`` mode) decode several times faster. Measured one thread on
Debian's mate-backgrounds photos (1.3-18 MP; ``python -m benches.decode_region --big DIR``, figures in the
report; the timings vary by up to 2x between runs on a shared machine, the pattern does not): progressive
(1.3-18 MP, 0.3-8 bits/pixel): DCT + region on the original 1.0-1.2x faster than a full decode, the
re-encoded file with DCT + region 3.7-18x; baseline above 1.5 bits/pixel (1.7-4.6): DCT + region 1.0-1.8x,
re-encoded 2.8-7.4x; baseline below 1 bit/pixel: DCT + region on the original already 1.5-7x, while
re-encoding at q90 adds bits and is not faster (1.6-2.8x vs full, slower than DCT + region on the
original but for one photo). Below about one megapixel a decode costs a few ms, less than two 224-px BYOL
views, so re-encoding (one more lossy generation, PSNR about 40 dB at q90) would buy little.
"""
from __future__ import annotations

REENCODE_MIN_PIXELS = 1_000_000  # smaller originals always pass through: their decode is cheaper than the views
REENCODE_MIN_BITS_PER_PIXEL = 1.5  # baseline originals above this are entropy-decoding bound


def reencode_pays(height: int, width: int, nbytes: int, progressive: bool) -> bool:
    """True when a source JPEG of height x width pixels, ``nbytes`` long, should be re-encoded (same size,
    baseline, writer quality) rather than stored untouched: more than REENCODE_MIN_PIXELS pixels and either
    progressive or more than REENCODE_MIN_BITS_PER_PIXEL bits per pixel (see the module docstring)."""
    pixels = int(height) * int(width)
    if pixels <= 0 or nbytes <= 0:
        raise ValueError(f"reencode_pays needs a positive size, got {height}x{width}, {nbytes} bytes")
    if pixels <= REENCODE_MIN_PIXELS:
        return False
    return bool(progressive) or 8 * nbytes / pixels > REENCODE_MIN_BITS_PER_PIXEL

"""An invisible watermark that marks a picture as made by figurine's image model (AI-generated).

    from figurine.watermark import embed, detect
    marked = embed(package)                  # PIL RGB image in, PIL RGB image out
    found = detect(Image.open("ada.jpg"))    # Detection(found=True, matched=64, bits=64, ...)
    print(found.describe())                  # "found (64 of 64 bits match; ...)"

What is hidden: a fixed 64-bit mark, the ASCII bytes of MARK ("figurine"), meaning "made by
figurine, an AI image generator". Nothing else: no seed, no name, nothing about the person.

How (the DWT-DCT-SVD scheme of blind-watermark, github.com/guofei9987/blind_watermark, MIT):
1. RGB -> YUV (float); one level of a Haar wavelet transform per channel; its low band is cut
   into 4x4 blocks (each covers 8x8 pixels).
2. Each block: 2-D DCT, its 16 coefficients shuffled by a fixed key, SVD. Bit i of the mark
   (block number mod 64) is written by quantising the two largest singular values: s0 to the
   lower or upper half of a step of D1, s1 likewise with D2. Then everything is undone.
3. Detection repeats steps 1-2 and reads each block's bit back (s0 counts 3/4, s1 1/4); the
   ~10 000 blocks of a 1080x1350 package vote on each of the 64 bits. The mark is found when
   at least MIN_MATCH of the 64 bits agree: on a picture without the mark each bit agrees by
   chance, so a false alarm has probability P(Binomial(64, 1/2) >= 56) ~ 2.8e-10.
4. A picture scaled down or up keeps the mark only in proportion to its size, so detect() also
   tries the picture scaled back to each size figurine writes (1080x1350, 1080x1920) whose
   aspect ratio it has.

Why not a package: SDXL's own pipeline uses invisible-watermark's "dwtDct" method. Measured on
figurine's packages (benchmarks/watermark.txt, from benchmarks/watermark_robustness.py), that
method does not read its own mark back even from the unchanged picture (26 of 48 bits), and its
"dwtDctSvd" method loses it in a JPEG re-save at quality 80 (42-44 of 48 bits) or a WebP one
(25 of 48), and writes uint8 values that wrap around (pixels off by up to 211 of 255: visible
speckles along the package's edges). blind-watermark has this better scheme but calls
multiprocessing.set_start_method('fork') when imported, which raises RuntimeError in any process
that has shown a tqdm progress bar (diffusers does), and prints a banner on stdout. The scheme is
60 lines of numpy over PyWavelets, so it lives here. TrustMark (Adobe) downloads its model at
run time, which figurine never does.

What it survives is stated in the README ("Provenance") and tested in tests/test_watermark.py.
It is not a security feature: anyone who knows this scheme can remove or forge the mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

MARK = b"figurine"  # 64 bits
BITS = np.unpackbits(np.frombuffer(MARK, dtype=np.uint8)).astype(np.int64)
N_BITS = len(BITS)
MIN_MATCH = 56  # of 64: false alarm ~ 2.8e-10 per size tried
KEY = 0x66696775  # block-shuffle key ("figu"); public, part of the scheme
D1, D2 = 36.0, 20.0  # quantisation steps of the first and second singular value
BLOCK = 4
MIN_SIDE = 256  # smaller pictures hold too few blocks for 64 bits to vote
MAX_PIXELS = 16_000_000  # detect() reads no larger picture (figurine writes 1.5-2 megapixels)


@dataclass(frozen=True)
class Detection:
    found: bool
    matched: int  # bits that agree with MARK
    bits: int  # N_BITS
    p_chance: float  # probability of >= matched agreeing bits on a picture without the mark
    size: tuple[int, int] | None  # the size it was read at (None: not checked)
    not_checked: str | None = None  # why it was not read

    def describe(self) -> str:
        if self.size is None:
            return f"not checked ({self.not_checked})"
        state = "found" if self.found else "not found"
        return (f"{state} ({self.matched} of {self.bits} bits match the figurine mark; "
                f"chance of that on an unmarked picture: {self.p_chance:.1e})")


def _dct_matrix(n: int = BLOCK) -> np.ndarray:
    """The orthonormal DCT-II matrix (what cv2.dct applies): X = C @ B @ C.T."""
    k = np.arange(n)[:, None]
    c = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)
    c[0] /= np.sqrt(2)
    return c


_C = _dct_matrix()


def _to_yuv(rgb: np.ndarray) -> np.ndarray:
    """RGB float -> Y, U, V (BT.601, no offsets: the scheme only needs a fixed linear map)."""
    m = np.array([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])
    return rgb @ m.T


def _from_yuv(yuv: np.ndarray) -> np.ndarray:
    m = np.array([[1.0, 0.0, 1.13983], [1.0, -0.39465, -0.58060], [1.0, 2.03211, 0.0]])
    return yuv @ m.T


def _shuffles(n_blocks: int) -> np.ndarray:
    """For each block, the fixed order its 16 DCT coefficients are shuffled into."""
    return np.random.RandomState(KEY).random_sample((n_blocks, BLOCK * BLOCK)).argsort(axis=1)


def _blocks(band: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The low band's whole 4x4 blocks, as (N, 4, 4), and the grid shape."""
    rows, cols = band.shape[0] // BLOCK, band.shape[1] // BLOCK
    b = band[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).swapaxes(1, 2)
    return b.reshape(-1, BLOCK, BLOCK), (rows, cols)


def _bands(rgb: np.ndarray):
    """Per YUV channel: the Haar transform of the picture padded to even sides."""
    import pywt

    h, w = rgb.shape[:2]
    yuv = np.pad(_to_yuv(rgb.astype(np.float64)), ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return [pywt.dwt2(yuv[:, :, ch], "haar") for ch in range(3)]


def _svd_of_blocks(blocks: np.ndarray, order: np.ndarray):
    coeffs = (_C @ blocks @ _C.T).reshape(len(blocks), -1)
    shuffled = np.take_along_axis(coeffs, order, axis=1).reshape(-1, BLOCK, BLOCK)
    return np.linalg.svd(shuffled)


def embed(image):
    """The picture with the figurine mark hidden in it: PIL RGB (or RGBA, alpha kept) in and out."""
    import pywt
    from PIL import Image

    # 1. Check the input.
    if min(image.size) < MIN_SIDE:
        raise ValueError(f"a picture needs at least {MIN_SIDE}x{MIN_SIDE} pixels to carry the mark")
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]

    # 2. Each channel's low band: write bit (i mod 64) into block i.
    bands = _bands(rgb)
    out = []
    for low, high in bands:
        blocks, (rows, cols) = _blocks(low)
        order = _shuffles(len(blocks))
        bits = BITS[np.arange(len(blocks)) % N_BITS]
        u, s, vt = _svd_of_blocks(blocks, order)
        s[:, 0] = (np.floor(s[:, 0] / D1) + 0.25 + 0.5 * bits) * D1
        s[:, 1] = (np.floor(s[:, 1] / D2) + 0.25 + 0.5 * bits) * D2
        shuffled = (u * s[:, None, :]) @ vt
        coeffs = np.empty((len(blocks), BLOCK * BLOCK))
        np.put_along_axis(coeffs, order, shuffled.reshape(len(blocks), -1), axis=1)
        new = _C.T @ coeffs.reshape(-1, BLOCK, BLOCK) @ _C
        low = low.copy()
        low[: rows * BLOCK, : cols * BLOCK] = (
            new.reshape(rows, cols, BLOCK, BLOCK).swapaxes(1, 2).reshape(rows * BLOCK, cols * BLOCK))
        out.append(pywt.idwt2((low, high), "haar")[:h, :w])

    # 3. Back to 8-bit RGB.
    rgb_out = np.clip(np.rint(_from_yuv(np.stack(out, axis=2))), 0, 255).astype(np.uint8)
    marked = Image.fromarray(rgb_out, "RGB")
    if alpha is not None:
        marked.putalpha(alpha)
    return marked


def bit_scores(image) -> np.ndarray:
    """Each of the 64 bits as read from the picture at its own size: 0..1 (the share of votes
    for 1)."""
    rgb = np.asarray(image.convert("RGB"))
    votes = np.zeros(N_BITS)
    counts = np.zeros(N_BITS)
    for low, _high in _bands(rgb):
        blocks, _ = _blocks(low)
        _, s, _ = _svd_of_blocks(blocks, _shuffles(len(blocks)))
        vote = 0.75 * (s[:, 0] % D1 > D1 / 2) + 0.25 * (s[:, 1] % D2 > D2 / 2)
        slot = np.arange(len(blocks)) % N_BITS
        votes += np.bincount(slot, weights=vote, minlength=N_BITS)
        counts += np.bincount(slot, minlength=N_BITS)
    return votes / np.maximum(counts, 1)


def p_chance(matched: int, bits: int = N_BITS) -> float:
    """P(at least `matched` of `bits` fair coin flips agree): the false-alarm probability."""
    return sum(comb(bits, k) for k in range(matched, bits + 1)) / 2 ** bits


def _read(image) -> Detection:
    matched = int(((bit_scores(image) > 0.5).astype(np.int64) == BITS).sum())
    return Detection(matched >= MIN_MATCH, matched, N_BITS, p_chance(matched), image.size)


def candidate_sizes(size: tuple[int, int]) -> list[tuple[int, int]]:
    """The picture's own size, then each size figurine writes with the same aspect ratio (1 %)."""
    from figurine.packaging.render import SIZES

    w, h = size
    out = [size]
    for sw, sh in SIZES.values():
        if (sw, sh) != size and abs((w / h) / (sw / sh) - 1) < 0.01:
            out.append((sw, sh))
    return out


def detect(image) -> Detection:
    """Whether the picture carries the figurine mark: read at its own size, then scaled back to
    figurine's output sizes of the same shape. The best reading is returned."""
    from PIL import Image

    if min(image.size) < MIN_SIDE:
        return Detection(False, 0, N_BITS, 1.0, None, f"picture smaller than {MIN_SIDE}x{MIN_SIDE}")
    if image.width * image.height > MAX_PIXELS:
        return Detection(False, 0, N_BITS, 1.0, None, f"picture over {MAX_PIXELS // 1_000_000} megapixels")
    best = None
    for size in candidate_sizes(image.size):
        picture = image if size == image.size else image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        result = _read(picture)
        if best is None or result.matched > best.matched:
            best = result
        if result.found:
            break
    return best

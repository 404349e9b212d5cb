"""`Picture`: one decoded picture kept in its native pixel format.

The pipeline never converts whole frames to RGB. A face region is converted with
`Picture.to_rgb(box)`, restored, and blended back with `Picture.blend_rgb(rgb, mask, box)`,
which writes only the samples whose mask is non-zero; every other sample of every
plane stays bit-identical to the decoded source.

Supported layouts (anything else decoded is repacked once, losslessly where possible,
to the nearest one by `Picture.from_av`):

- planar YUV: yuv420p, yuv422p, yuv444p, yuv440p, their yuvj* (full range) variants, and
  9/10/12/14/16-bit little-endian variants (e.g. yuv420p10le); planes (Y, U, V).
- gray, gray10le, gray12le, gray16le: planes (Y,).
- packed rgb24 / bgr24: one plane of shape (H, W, 3) in that byte order.
- planar gbrp, gbrp10le, gbrp12le, gbrp16le: planes (G, B, R) (FFmpeg's plane order).

Samples are uint8 for 8-bit formats and uint16 (native little-endian) otherwise.

Colour conversion follows the stream's tags: matrix BT.601 / BT.709 / BT.2020
(non-constant luminance) and TV (limited) or PC (full) range. Untagged pictures use
BT.709 when HD-sized (width >= 1280 or height >= 720) and BT.601 otherwise, TV range
for YUV, PC range for RGB and yuvj* formats: what players assume.

Chroma is upsampled by sample repetition for `to_rgb`, and for `blend_rgb` a chroma
sample becomes `old + mean(m * (new - old))` over its block of luma pixels (m = mask),
which is exactly the average of the per-pixel blend; its weight is the luma mask
averaged over the subsampling block. All conversions are vectorised numpy in float32.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass, field

import numpy as np

# FFmpeg enum values (libavutil/pixfmt.h): stable across versions.
AVCOL_RANGE_UNSPECIFIED, AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG = 0, 1, 2
AVCOL_SPC_RGB, AVCOL_SPC_BT709, AVCOL_SPC_UNSPECIFIED = 0, 1, 2
AVCOL_SPC_BT470BG, AVCOL_SPC_SMPTE170M, AVCOL_SPC_SMPTE240M = 5, 6, 7
AVCOL_SPC_BT2020_NCL, AVCOL_SPC_BT2020_CL = 9, 10

# matrix name -> (Kr, Kb)
MATRICES: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
    "smpte240m": (0.212, 0.087),
}

_SPC_TO_MATRIX = {
    AVCOL_SPC_BT709: "bt709",
    AVCOL_SPC_BT470BG: "bt601",
    AVCOL_SPC_SMPTE170M: "bt601",
    4: "bt601",  # FCC: close enough to 601 for display purposes
    AVCOL_SPC_SMPTE240M: "smpte240m",
    AVCOL_SPC_BT2020_NCL: "bt2020",
    AVCOL_SPC_BT2020_CL: "bt2020",
    AVCOL_SPC_RGB: "rgb",
}
_MATRIX_TO_SPC = {
    "bt709": AVCOL_SPC_BT709,
    "bt601": AVCOL_SPC_SMPTE170M,
    "smpte240m": AVCOL_SPC_SMPTE240M,
    "bt2020": AVCOL_SPC_BT2020_NCL,
    "rgb": AVCOL_SPC_RGB,
}


@dataclass(frozen=True)
class PixelLayout:
    """How a supported pixel format is laid out in numpy planes."""

    name: str
    kind: str  # "yuv" | "gray" | "rgb" (packed RGB) | "bgr" (packed BGR) | "gbr" (planar)
    bits: int
    log2_chroma_w: int = 0
    log2_chroma_h: int = 0
    full_range: bool = False  # yuvj*: full range whatever the tags say

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits <= 8 else np.uint16)

    @property
    def max_code(self) -> int:
        return (1 << self.bits) - 1


def _build_layouts() -> dict[str, PixelLayout]:
    layouts: dict[str, PixelLayout] = {}
    subs = {"420": (1, 1), "422": (1, 0), "444": (0, 0), "440": (0, 1)}
    for sub, (lw, lh) in subs.items():
        layouts[f"yuv{sub}p"] = PixelLayout(f"yuv{sub}p", "yuv", 8, lw, lh)
        layouts[f"yuvj{sub}p"] = PixelLayout(f"yuvj{sub}p", "yuv", 8, lw, lh, full_range=True)
        for bits in (9, 10, 12, 14, 16):
            name = f"yuv{sub}p{bits}le"
            layouts[name] = PixelLayout(name, "yuv", bits, lw, lh)
    layouts["gray"] = PixelLayout("gray", "gray", 8)
    for bits in (9, 10, 12, 14, 16):
        layouts[f"gray{bits}le"] = PixelLayout(f"gray{bits}le", "gray", bits)
    layouts["rgb24"] = PixelLayout("rgb24", "rgb", 8)
    layouts["bgr24"] = PixelLayout("bgr24", "bgr", 8)
    layouts["gbrp"] = PixelLayout("gbrp", "gbr", 8)
    for bits in (9, 10, 12, 14, 16):
        layouts[f"gbrp{bits}le"] = PixelLayout(f"gbrp{bits}le", "gbr", bits)
    return layouts


LAYOUTS: dict[str, PixelLayout] = _build_layouts()

# Formats we do not hold natively -> the supported format they are repacked to.
_REPACK = {
    "nv12": "yuv420p", "nv21": "yuv420p", "p010le": "yuv420p10le", "p016le": "yuv420p16le",
    "nv16": "yuv422p", "nv20le": "yuv422p10le", "yuyv422": "yuv422p", "uyvy422": "yuv422p",
    "nv24": "yuv444p", "yuva420p": "yuv420p", "yuva422p": "yuv422p", "yuva444p": "yuv444p",
    "yuva420p10le": "yuv420p10le", "rgba": "rgb24", "argb": "rgb24", "bgra": "bgr24",
    "abgr": "bgr24", "rgb0": "rgb24", "bgr0": "bgr24", "0rgb": "rgb24", "0bgr": "bgr24",
    "gbrap": "gbrp", "gbrap10le": "gbrp10le", "gbrap12le": "gbrp12le", "gbrap16le": "gbrp16le",
    "pal8": "rgb24", "monob": "gray", "monow": "gray", "ya8": "gray",
    "yuv411p": "yuv444p", "yuv410p": "yuv444p", "yuvj411p": "yuvj444p",
    # image sequences (videofix.io.sequence): 16-bit DPX/TIFF/PNG, big-endian DPX, EXR floats.
    # RGB -> planar GBR of the same depth is an exact repacking; alpha is dropped (the
    # sequence writer takes it back from the source file); floats are clipped to 0..1 and
    # quantised to 16 bits for the face stages (the writer keeps the source's floats wherever
    # the picture was not changed).
    "rgb48le": "gbrp16le", "rgb48be": "gbrp16le", "bgr48le": "gbrp16le", "bgr48be": "gbrp16le",
    "rgba64le": "gbrp16le", "rgba64be": "gbrp16le", "bgra64le": "gbrp16le", "bgra64be": "gbrp16le",
    "gbrp10be": "gbrp10le", "gbrp12be": "gbrp12le", "gbrp16be": "gbrp16le", "gbrap12le": "gbrp12le",
    "gbrpf32le": "gbrp16le", "gbrapf32le": "gbrp16le", "grayf32le": "gray16le",
    "gbrpf16le": "gbrp16le", "gbrapf16le": "gbrp16le", "grayf16le": "gray16le",
    "gray16be": "gray16le", "gray10be": "gray10le", "gray12be": "gray12le", "ya16le": "gray16le",
    "ya16be": "gray16le",
}


def default_matrix(width: int, height: int) -> str:
    """Matrix players assume for an untagged YUV stream: BT.709 for HD sizes, else BT.601."""
    return "bt709" if (width >= 1280 or height >= 720) else "bt601"


def matrix_from_tag(colorspace_tag: int | None, width: int, height: int) -> str:
    """FFmpeg `AVColorSpace` value -> matrix name ("bt601"|"bt709"|"bt2020"|...)."""
    name = _SPC_TO_MATRIX.get(colorspace_tag if colorspace_tag is not None else -1)
    if name is None or name == "rgb":
        return default_matrix(width, height)
    return name


def matrix_to_tag(matrix: str) -> int:
    """Matrix name -> FFmpeg `AVColorSpace` value."""
    return _MATRIX_TO_SPC[matrix]


def range_from_tag(range_tag: int | None, layout: PixelLayout) -> str:
    """FFmpeg `AVColorRange` value -> "tv" | "pc" (untagged: pc for RGB and yuvj*, else tv)."""
    if layout.full_range or layout.kind in ("rgb", "bgr", "gbr"):
        return "pc"
    if range_tag == AVCOL_RANGE_JPEG:
        return "pc"
    return "tv"


def range_to_tag(color_range: str) -> int:
    return AVCOL_RANGE_JPEG if color_range == "pc" else AVCOL_RANGE_MPEG


def _ceil_shift(n: int, s: int) -> int:
    return -((-n) >> s)


@dataclass
class Picture:
    """One picture in its native pixel format.

    Attributes:
        planes: tuple of numpy arrays, C-contiguous, uint8 (8-bit formats) or uint16
            (deeper formats, value range 0..2**bits-1). YUV: (Y (H,W), U (Hc,Wc), V (Hc,Wc))
            with Hc = ceil(H / 2**log2_chroma_h), Wc likewise. Gray: (Y,). rgb24/bgr24: one
            (H,W,3) array in that channel order. gbrp*: (G, B, R), each (H,W).
        pix_fmt: FFmpeg pixel format name of `planes` (see `LAYOUTS`).
        width, height: picture size in luma pixels.
        colorspace: matrix used to convert to/from RGB: "bt601" | "bt709" | "bt2020" |
            "smpte240m" ("rgb" for RGB formats).
        color_range: "tv" (limited) or "pc" (full).
        color_primaries, color_trc: FFmpeg enum values carried to the encoder (2 = unspecified).
    """

    planes: tuple[np.ndarray, ...]
    pix_fmt: str
    width: int
    height: int
    colorspace: str = "bt601"
    color_range: str = "tv"
    color_primaries: int = 2
    color_trc: int = 2
    _layout: PixelLayout = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pix_fmt not in LAYOUTS:
            raise ValueError(f"unsupported pixel format for Picture: {self.pix_fmt!r}")
        self._layout = LAYOUTS[self.pix_fmt]
        self.planes = tuple(self.planes)
        expected = self.plane_shapes()
        got = tuple(p.shape for p in self.planes)
        if got != expected:
            raise ValueError(f"{self.pix_fmt} {self.width}x{self.height}: plane shapes {got}, expected {expected}")
        for p in self.planes:
            if p.dtype != self._layout.dtype:
                raise ValueError(f"{self.pix_fmt}: planes must be {self._layout.dtype}, got {p.dtype}")
        if self._layout.kind in ("rgb", "bgr", "gbr"):
            self.colorspace = "rgb"
            self.color_range = "pc"
        elif self._layout.full_range:
            self.color_range = "pc"

    # ------------------------------------------------------------------ layout
    @property
    def layout(self) -> PixelLayout:
        return self._layout

    @property
    def bit_depth(self) -> int:
        return self._layout.bits

    def plane_shapes(self) -> tuple[tuple[int, ...], ...]:
        lay, w, h = LAYOUTS[self.pix_fmt], self.width, self.height
        if lay.kind == "yuv":
            c = (_ceil_shift(h, lay.log2_chroma_h), _ceil_shift(w, lay.log2_chroma_w))
            return ((h, w), c, c)
        if lay.kind == "gray":
            return ((h, w),)
        if lay.kind in ("rgb", "bgr"):
            return ((h, w, 3),)
        return ((h, w), (h, w), (h, w))

    def copy(self) -> "Picture":
        base = _packed_base(self)
        if base is not None:  # one copy, and the copy keeps the packed layout
            planes = _packed_planes(self.pix_fmt, self.width, self.height)
            planes[0].base[...] = base
        else:
            planes = tuple(p.copy() for p in self.planes)
        return Picture(planes, self.pix_fmt, self.width, self.height,
                       self.colorspace, self.color_range, self.color_primaries, self.color_trc)

    def align_box(self, box) -> tuple[int, int, int, int]:
        """Clip `box` = (x0, y0, x1, y1) (luma pixels, x1/y1 exclusive) to the picture and
        grow it outwards to the chroma subsampling grid. Returns ints; may be empty
        (x0 == x1 or y0 == y1) when the box lies outside the picture."""
        x0, y0, x1, y1 = (int(np.floor(box[0])), int(np.floor(box[1])),
                          int(np.ceil(box[2])), int(np.ceil(box[3])))
        x0, y0 = max(0, min(x0, self.width)), max(0, min(y0, self.height))
        x1, y1 = max(x0, min(x1, self.width)), max(y0, min(y1, self.height))
        lay = self._layout
        if lay.kind == "yuv":
            mx, my = (1 << lay.log2_chroma_w) - 1, (1 << lay.log2_chroma_h) - 1
            x0, y0 = x0 & ~mx, y0 & ~my
            x1 = min(self.width, (x1 + mx) & ~mx) if x1 > x0 else x1
            y1 = min(self.height, (y1 + my) & ~my) if y1 > y0 else y1
        return (x0, y0, x1, y1)

    # ------------------------------------------------------------ conversions
    def _coeffs(self) -> tuple[float, float, float]:
        kr, kb = MATRICES.get(self.colorspace, MATRICES[default_matrix(self.width, self.height)])
        return kr, 1.0 - kr - kb, kb

    def _yuv_scale(self) -> tuple[float, float, float, float]:
        """(luma offset, luma scale, chroma offset, chroma scale) mapping normalised
        Y' in 0..1 and Cb/Cr in -0.5..0.5 to code values."""
        bits = self._layout.bits
        if self.color_range == "pc":
            m = float((1 << bits) - 1)
            return 0.0, m, float(1 << (bits - 1)), m
        k = float(1 << (bits - 8))
        return 16.0 * k, 219.0 * k, 128.0 * k, 224.0 * k

    def to_rgb(self, box=None) -> np.ndarray:
        """RGB of a region as float32 (h, w, 3) in 0..1, colour order **RGB**.

        `box` = (x0, y0, x1, y1) in luma pixels (clipped to the picture; need not be aligned);
        None converts the whole picture (previews only: the pipeline converts face regions).
        """
        x0, y0, x1, y1 = self._clip(box)
        lay = self._layout
        h, w = y1 - y0, x1 - x0
        if lay.kind in ("rgb", "bgr"):
            region = self.planes[0][y0:y1, x0:x1]
            if lay.kind == "bgr":
                region = region[..., ::-1]
            return region.astype(np.float32) * np.float32(1.0 / 255.0)
        if lay.kind == "gbr":
            g, b, r = (p[y0:y1, x0:x1] for p in self.planes)
            out = np.stack([r, g, b], axis=-1).astype(np.float32)
            out *= np.float32(1.0 / lay.max_code)
            return out
        yo, ys, co, cs = self._yuv_scale()
        y = self.planes[0][y0:y1, x0:x1].astype(np.float32)
        y -= yo
        y *= np.float32(1.0 / ys)
        if lay.kind == "gray":
            np.clip(y, 0.0, 1.0, out=y)
            return np.repeat(y[..., None], 3, axis=-1)
        cb = self._chroma_region(1, x0, y0, x1, y1)
        cr = self._chroma_region(2, x0, y0, x1, y1)
        cb -= co
        cb *= np.float32(1.0 / cs)
        cr -= co
        cr *= np.float32(1.0 / cs)
        kr, kg, kb = self._coeffs()
        out = np.empty((h, w, 3), np.float32)
        out[..., 0] = y + np.float32(2.0 * (1.0 - kr)) * cr
        out[..., 2] = y + np.float32(2.0 * (1.0 - kb)) * cb
        # G = (Y - Kr R - Kb B) / Kg, written in terms of Cb/Cr to save passes
        out[..., 1] = (y - np.float32(2.0 * kr * (1.0 - kr) / kg) * cr
                       - np.float32(2.0 * kb * (1.0 - kb) / kg) * cb)
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def _clip(self, box) -> tuple[int, int, int, int]:
        if box is None:
            return (0, 0, self.width, self.height)
        x0, y0, x1, y1 = (int(v) for v in box)
        x0, y0 = max(0, min(x0, self.width)), max(0, min(y0, self.height))
        return (x0, y0, max(x0, min(x1, self.width)), max(y0, min(y1, self.height)))

    def _chroma_region(self, index: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Chroma plane `index` upsampled (by repetition) to luma region, float32 (h,w)."""
        lay = self._layout
        sx, sy = lay.log2_chroma_w, lay.log2_chroma_h
        if x1 <= x0 or y1 <= y0:
            return np.zeros((y1 - y0, x1 - x0), np.float32)
        cx0, cy0 = x0 >> sx, y0 >> sy
        cx1, cy1 = ((x1 - 1) >> sx) + 1, ((y1 - 1) >> sy) + 1
        c = self.planes[index][cy0:cy1, cx0:cx1].astype(np.float32)
        if sy:
            c = np.repeat(c, 1 << sy, axis=0)
        if sx:
            c = np.repeat(c, 1 << sx, axis=1)
        oy, ox = y0 - (cy0 << sy), x0 - (cx0 << sx)
        return np.ascontiguousarray(c[oy:oy + (y1 - y0), ox:ox + (x1 - x0)])

    def _rgb_to_codes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float RGB (h,w,3) 0..1 -> float32 code values (Y, Cb, Cr) of this picture's format."""
        kr, kg, kb = self._coeffs()
        r, g, b = (rgb[..., i].astype(np.float32, copy=False) for i in range(3))
        y = np.float32(kr) * r + np.float32(kg) * g + np.float32(kb) * b
        cb = (b - y) * np.float32(0.5 / (1.0 - kb))
        cr = (r - y) * np.float32(0.5 / (1.0 - kr))
        yo, ys, co, cs = self._yuv_scale()
        y *= np.float32(ys)
        y += np.float32(yo)
        cb *= np.float32(cs)
        cb += np.float32(co)
        cr *= np.float32(cs)
        cr += np.float32(co)
        return y, cb, cr

    def rgb_to_luma(self, rgb: np.ndarray) -> np.ndarray:
        """Luma code values of **RGB** float (h, w, 3) in 0..1: float32 (h, w) on the scale of
        this picture's luma plane (YUV/gray: its matrix and range; RGB formats: the BT.601
        weighted sum times the maximum code). Used to measure and match luma statistics."""
        kr, kg, kb = self._coeffs() if self._layout.kind in ("yuv", "gray") else (0.299, 0.587, 0.114)
        y = (np.float32(kr) * rgb[..., 0] + np.float32(kg) * rgb[..., 1] + np.float32(kb) * rgb[..., 2]).astype(np.float32)
        if self._layout.kind in ("yuv", "gray"):
            yo, ys, _, _ = self._yuv_scale()
            return y * np.float32(ys) + np.float32(yo)
        return y * np.float32(self._layout.max_code)

    def luma_code_scale(self) -> float:
        """Luma code values per unit of RGB (0..1): 219 * 2**(bits-8) for TV-range YUV,
        2**bits - 1 otherwise."""
        if self._layout.kind in ("yuv", "gray"):
            return float(self._yuv_scale()[1])
        return float(self._layout.max_code)

    def blend_rgb(self, rgb: np.ndarray, mask: np.ndarray, box, luma_only: bool = False) -> None:
        """Blend an RGB region into the planes, in place: out = (1 - mask) * old + mask * rgb.

        Args:
            rgb: float (h, w, 3) **RGB** in 0..1 (uint8 0..255 is accepted too).
            mask: float (h, w) in 0..1.
            box: (x0, y0, x1, y1) as returned by `align_box`; rgb and mask cover exactly it.
            luma_only: blend only the luminance of `rgb` and keep the picture's own chroma.
                YUV: only the Y plane is written, the chroma planes stay bit-identical. RGB
                formats: each channel moves by the change of luma (R-Y, B-Y kept, up to clipping).

        Every sample whose weight is 0 (luma: mask == 0; chroma: the whole subsampling
        block has mask == 0) keeps its exact previous value.
        """
        box = tuple(int(v) for v in box)
        if box != self.align_box(box):
            raise ValueError(f"blend_rgb: box {box} is not aligned; use Picture.align_box (got "
                             f"{self.align_box(box)} for it)")
        x0, y0, x1, y1 = box
        h, w = y1 - y0, x1 - x0
        if rgb.shape != (h, w, 3) or mask.shape != (h, w):
            raise ValueError(f"blend_rgb: rgb {rgb.shape} / mask {mask.shape} must be ({h}, {w}, 3) / ({h}, {w})")
        if h == 0 or w == 0:
            return
        if rgb.dtype == np.uint8:
            rgb = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
        if luma_only and self._layout.kind in ("rgb", "bgr", "gbr"):
            old_rgb = self.to_rgb(box)
            delta = self.rgb_to_luma(rgb) - self.rgb_to_luma(old_rgb)
            rgb = np.clip(old_rgb + (delta / np.float32(self._layout.max_code))[..., None], 0.0, 1.0)
        m = np.clip(mask.astype(np.float32, copy=False), 0.0, 1.0)
        touched = m > 0
        if not touched.any():
            return
        lay = self._layout
        top = np.float32(lay.max_code)

        def blend_plane(plane: np.ndarray, new_codes: np.ndarray, weight: np.ndarray,
                        sel: np.ndarray, region: tuple[slice, ...]) -> None:
            old = plane[region]
            oldf = old.astype(np.float32)
            val = oldf + weight * (new_codes - oldf)
            np.rint(val, out=val)
            np.clip(val, 0.0, top, out=val)
            old[sel] = val[sel].astype(plane.dtype)

        ry, rx = slice(y0, y1), slice(x0, x1)
        if lay.kind in ("rgb", "bgr"):
            codes = rgb.astype(np.float32) * top
            if lay.kind == "bgr":
                codes = codes[..., ::-1]
            region = self.planes[0][ry, rx]
            val = region.astype(np.float32) + m[..., None] * (codes - region)
            np.rint(val, out=val)
            np.clip(val, 0.0, top, out=val)
            region[touched] = val[touched].astype(region.dtype)
            return
        if lay.kind == "gbr":
            codes = rgb.astype(np.float32) * top
            for plane, ch in zip(self.planes, (1, 2, 0)):  # G, B, R
                blend_plane(plane, codes[..., ch], m, touched, (ry, rx))
            return
        yc, cbc, crc = self._rgb_to_codes(rgb)
        blend_plane(self.planes[0], yc, m, touched, (ry, rx))
        if lay.kind == "gray" or luma_only:
            return
        sx, sy = lay.log2_chroma_w, lay.log2_chroma_h
        bx, by = 1 << sx, 1 << sy
        cy0, cx0 = y0 >> sy, x0 >> sx
        hc, wc = _ceil_shift(h, sy), _ceil_shift(w, sx)
        mb = _block_sum(m, by, bx)
        count = _block_count(h, w, by, bx)
        mc = mb / count  # chroma weight: luma mask averaged over its block
        sel = mc > 0
        creg = (slice(cy0, cy0 + hc), slice(cx0, cx0 + wc))
        for plane, codes in ((self.planes[1], cbc), (self.planes[2], crc)):
            old = plane[creg]
            oldf = old.astype(np.float32)
            # mean over the block of m * (new - old), old constant over the block
            val = oldf + (_block_sum(m * codes, by, bx) - mb * oldf) / count
            np.rint(val, out=val)
            np.clip(val, 0.0, top, out=val)
            old[sel] = val[sel].astype(plane.dtype)

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_rgb(cls, rgb: np.ndarray, pix_fmt: str = "yuv420p", colorspace: str | None = None,
                 color_range: str = "tv") -> "Picture":
        """Build a picture from **RGB** uint8 (H, W, 3) (or float32 0..1).

        Chroma is the plain average of each subsampling block (odd edges average the
        pixels that exist). `colorspace` None picks the size default (see `default_matrix`).
        """
        if pix_fmt not in LAYOUTS:
            raise ValueError(f"unsupported pixel format {pix_fmt!r}")
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"from_rgb expects (H, W, 3) RGB, got {rgb.shape}")
        h, w = rgb.shape[:2]
        lay = LAYOUTS[pix_fmt]
        rgbf = rgb.astype(np.float32) * np.float32(1.0 / 255.0) if rgb.dtype == np.uint8 else rgb.astype(np.float32)
        top = np.float32(lay.max_code)

        def quant(a: np.ndarray) -> np.ndarray:
            return np.clip(np.rint(a), 0, top).astype(lay.dtype)

        if lay.kind in ("rgb", "bgr", "gbr"):
            codes = rgbf * top
            if lay.kind == "rgb":
                planes = (quant(codes),)
            elif lay.kind == "bgr":
                planes = (quant(codes[..., ::-1]),)
            else:
                planes = (quant(codes[..., 1]), quant(codes[..., 2]), quant(codes[..., 0]))
            return cls(planes, pix_fmt, w, h, "rgb", "pc")
        if lay.full_range:
            color_range = "pc"
        pic = cls.__new__(cls)
        pic.pix_fmt, pic.width, pic.height = pix_fmt, w, h
        pic.colorspace = colorspace or default_matrix(w, h)
        pic.color_range = color_range
        pic._layout = lay
        y, cb, cr = pic._rgb_to_codes(rgbf)
        if lay.kind == "gray":
            planes = (quant(y),)
        else:
            by, bx = 1 << lay.log2_chroma_h, 1 << lay.log2_chroma_w
            count = _block_sum(np.ones((h, w), np.float32), by, bx)
            planes = (quant(y), quant(_block_sum(cb, by, bx) / count), quant(_block_sum(cr, by, bx) / count))
        return cls(planes, pix_fmt, w, h, pic.colorspace, color_range)

    @classmethod
    def from_av(cls, frame, colorspace_tag: int | None = None, range_tag: int | None = None) -> "Picture":
        """Wrap a decoded `av.VideoFrame` (planes are copied out of FFmpeg's buffers).

        Frame colour tags win; `colorspace_tag` / `range_tag` (the stream's tags, FFmpeg enum
        values) fill in when the frame is untagged. Formats not in `LAYOUTS` are repacked
        to the nearest supported one (nv12 -> yuv420p, p010le -> yuv420p10le, ...).
        """
        fmt = frame.format.name
        if fmt not in LAYOUTS:
            target = _REPACK.get(fmt)
            if target is None:
                target = "yuv444p16le" if frame.format.components and frame.format.components[0].bits > 8 else "yuv444p"
            frame = frame.reformat(format=target)
            fmt = target
        lay = LAYOUTS[fmt]
        w, h = frame.width, frame.height
        packed = _packed_planes(fmt, w, h)  # yuv420p: one buffer, so `av_frame_view` needs no copy
        planes = []
        for i, plane in enumerate(frame.planes):
            if lay.kind in ("rgb", "bgr"):
                pw, ph, ch = w, h, 3
            else:
                pw, ph, ch = plane.width, plane.height, 1
            itemsize = lay.dtype.itemsize
            buf = np.frombuffer(plane, dtype=lay.dtype)
            arr = np.lib.stride_tricks.as_strided(buf, shape=(ph, pw * ch), strides=(plane.line_size, itemsize))
            if packed is not None:
                packed[i][...] = arr
                arr = packed[i]
            else:
                arr = arr.copy()
            planes.append(arr.reshape(ph, pw, 3) if ch == 3 else arr)
        spc = frame.colorspace if frame.colorspace not in (None, AVCOL_SPC_UNSPECIFIED) else colorspace_tag
        rng = frame.color_range if frame.color_range not in (None, AVCOL_RANGE_UNSPECIFIED) else range_tag
        return cls(tuple(planes), fmt, w, h, matrix_from_tag(spc, w, h), range_from_tag(rng, lay),
                   int(frame.color_primaries or 2), int(frame.color_trc or 2))

    def to_av_frame(self):
        """A new `av.VideoFrame` holding a copy of the planes, with colour tags set."""
        import av

        frame = av.VideoFrame(self.width, self.height, self.pix_fmt)
        itemsize = self._layout.dtype.itemsize
        for plane, arr in zip(frame.planes, self.planes):
            ph = arr.shape[0]
            row = arr.reshape(ph, -1)
            buf = np.frombuffer(plane, dtype=self._layout.dtype)
            dst = np.lib.stride_tricks.as_strided(buf, shape=row.shape, strides=(plane.line_size, itemsize))
            dst[...] = row
        return self._tag(frame)

    def av_frame_view(self):
        """An `av.VideoFrame` for reading (libswscale's input): the planes' own memory when
        they lie in one buffer in FFmpeg's packed layout (`from_av` decodes yuv420p that
        way: no copy; later writes to the planes show through), else `to_av_frame`'s copy.
        Colour tags set as `to_av_frame` sets them."""
        import av

        base = _packed_base(self)
        if base is None:
            return self.to_av_frame()
        return self._tag(av.VideoFrame.from_numpy_buffer(base.reshape(-1, self.width), format=self.pix_fmt))

    def _tag(self, frame):
        if self._layout.kind == "yuv" or self._layout.kind == "gray":
            frame.colorspace = matrix_to_tag(self.colorspace) if self.colorspace in _MATRIX_TO_SPC else AVCOL_SPC_UNSPECIFIED
        else:
            frame.colorspace = AVCOL_SPC_RGB
        frame.color_range = range_to_tag(self.color_range)
        try:
            frame.color_primaries = self.color_primaries
            frame.color_trc = self.color_trc
        except (AttributeError, ValueError):  # older PyAV: read-only
            pass
        return frame


_PACKABLE = ("yuv420p", "yuvj420p")  # formats PyAV's from_numpy_buffer takes as one (3h/2, w) array


def _packed_planes(fmt: str, w: int, h: int) -> tuple[np.ndarray, ...] | None:
    """Y, U, V views of one new (h w 3/2,) uint8 buffer in FFmpeg's packed yuv420p layout
    (each plane's rows follow each other, U after Y, V after U), for even sizes; else None."""
    if fmt not in _PACKABLE or w % 2 or h % 2:
        return None
    n, c = w * h, (w // 2) * (h // 2)
    buf = np.empty(n + 2 * c, np.uint8)
    return buf[:n].reshape(h, w), buf[n:n + c].reshape(h // 2, w // 2), buf[n + c:].reshape(h // 2, w // 2)


def _packed_base(picture: "Picture") -> np.ndarray | None:
    """The one buffer a picture's planes are views of, in `_packed_planes`' layout, or None
    (planes replaced, copied apart, or another format)."""
    w, h = picture.width, picture.height
    if picture.pix_fmt not in _PACKABLE or w % 2 or h % 2 or len(picture.planes) != 3:
        return None
    y, u, v = picture.planes
    base = y.base
    if not (isinstance(base, np.ndarray) and base is u.base and base is v.base and base.ndim == 1
            and base.dtype == np.uint8 and base.flags.c_contiguous and base.size == w * h * 3 // 2):
        return None
    at = base.ctypes.data
    n, c = w * h, (w // 2) * (h // 2)
    if (y.ctypes.data, u.ctypes.data, v.ctypes.data) != (at, at + n, at + n + c):
        return None
    if not (y.flags.c_contiguous and u.flags.c_contiguous and v.flags.c_contiguous):
        return None
    return base


@functools.lru_cache(maxsize=64)
def _block_count(h: int, w: int, by: int, bx: int) -> np.ndarray:
    """`_block_sum` of an (h, w) array of ones: the samples each block holds (float32, exact;
    read-only, shared between calls)."""
    rows = np.minimum(by, h - by * np.arange(-(-h // by))).astype(np.float32)
    cols = np.minimum(bx, w - bx * np.arange(-(-w // bx))).astype(np.float32)
    count = np.outer(rows, cols).astype(np.float32)
    count.setflags(write=False)
    return count


def _block_sum(a: np.ndarray, by: int, bx: int) -> np.ndarray:
    """Sum of `a` (h, w) over by x bx blocks -> (ceil(h/by), ceil(w/bx)) float32; blocks
    cut by the array edge sum only the elements that exist."""
    a = a.astype(np.float32, copy=False)
    if by == 1 and bx == 1:
        return a.copy()
    h, w = a.shape
    hp, wp = -(-h // by) * by, -(-w // bx) * bx
    if (hp, wp) != (h, w):
        a = np.pad(a, ((0, hp - h), (0, wp - w)))
    return a.reshape(hp // by, by, wp // bx, bx).sum(axis=(1, 3), dtype=np.float32)

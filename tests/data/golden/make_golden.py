#!/usr/bin/env python3
"""Rebuild tests/data/golden (the parity data the tests read) from the official reference folder.

    .venv/bin/python tests/data/golden/make_golden.py            # rebuild from ../shared/golden
    .venv/bin/python tests/data/golden/make_golden.py --check    # verify, write nothing
    .venv/bin/python tests/data/golden/make_golden.py --source /path/to/golden

The official folder (default: ``shared/golden`` beside the repository, or ``$VIDEOFIX_GOLDEN``)
holds the CodeFormer and VQFR reference runs as .npy/.json files (19 MB); its README.md and
vqfr/README.md give the cases and tolerances. This script stores every file the tests read in
about half that size (see README.md here):

* exact data (inputs, LUT, codes): the official array, lossless;
* floating-point results: ``round(value / step)`` as int16/int32, with ``step`` chosen from the
  README tolerance of the check that reads the file (storage error <= 1/10 of the tolerance;
  1/4 of the absolute part for the full-image float16 outputs); the measured storage error is
  written to manifest.json and the tests subtract it from the tolerance;
* an array that is a bit-identical slice of another (case A's logits and lq_feat are sample 0
  of case C's) is stored once;
* each array as a .npy inside .xz (byte planes for 2- and 4-byte values; delta filter for RGB).

After writing, every array is read back with the tests' own loader (tests/golden_data.py) and
compared with the official file. The output is deterministic: rerunning on the same folder
gives identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests"))
from golden_data import MANIFEST, Golden  # noqa: E402  (the tests' own loader verifies the result)

# The README tolerances (official README.md section 5, vqfr/README.md section 7), per check.
CHECKS = {
    "exact": {"kind": "exact"},
    "codeformer.logits": {"kind": "max_abs", "max_abs": 1e-4},
    "codeformer.lq_feat": {"kind": "max_abs", "max_abs": 2e-4},
    "codeformer.quant_feat": {"kind": "max_abs", "max_abs": 5e-5},
    "codeformer.crop": {"kind": "max_abs", "max_abs": 5e-4},
    "vqfr.logits": {"kind": "max_abs", "max_abs": 1e-4},
    "vqfr.enc_feat": {"kind": "max_abs", "max_abs": 1e-4},
    "vqfr.texfeat": {"kind": "max_abs", "max_abs": 1e-4},
    "vqfr.dcn": {"kind": "max_abs", "max_abs": 5e-5},
    "vqfr.crop": {"kind": "max_abs", "max_abs": 2e-3, "rms": 3e-4},
    "fp16_full": {"kind": "fp16", "abs": 1e-3, "rel": 1e-3},
}

# Every official file the tests read, in storage order (a larger array before its slices), and
# the check that reads it.
ARRAYS = [
    ("input_A_rgb_uint8", "exact"),
    ("input_C1_rgb_uint8", "exact"),
    ("normalize_lut_float32", "exact"),
    ("C_codes_int32", "exact"),
    ("A_codes_int32", "exact"),
    ("C_logits_float32", "codeformer.logits"),
    ("A_logits_float32", "codeformer.logits"),
    ("C_lq_feat_float32", "codeformer.lq_feat"),
    ("A_lq_feat_float32", "codeformer.lq_feat"),
    ("A_quant_feat_adain_float32", "codeformer.quant_feat"),
    ("A_out_crop192_320_float32", "codeformer.crop"),
    ("B_out_crop192_320_float32", "codeformer.crop"),
    ("C_out_crop192_320_float32", "codeformer.crop"),
    ("A_out_float16", "fp16_full"),
    ("B_out_float16", "fp16_full"),
    ("C_out_sample0_float16", "fp16_full"),
    ("C_out_sample1_float16", "fp16_full"),
    ("vqfr/C_codes_int32", "exact"),
    ("vqfr/A_codes_int32", "exact"),
    ("vqfr/A_logits_float32", "vqfr.logits"),
    ("vqfr/A_enc_feat_float32", "vqfr.enc_feat"),
    ("vqfr/A_texfeat_L32_float32", "vqfr.texfeat"),
    ("vqfr/A_dcn_L32_offset_raw_float32", "vqfr.dcn"),
    ("vqfr/A_dcn_L32_out_float32", "vqfr.dcn"),
    ("vqfr/A_out_crop192_320_float32", "vqfr.crop"),
    ("vqfr/B_out_crop192_320_float32", "vqfr.crop"),
    ("vqfr/C_out_crop192_320_float32", "vqfr.crop"),
    ("vqfr/A_out_float16", "fp16_full"),
    ("vqfr/B_out_float16", "fp16_full"),
]
# JSON files the tests read: (name, compress)
JSONS = [
    ("codeformer_state_dict_keys.json", False),
    ("weights_checksums.json", True),
    ("vqfr/vqfr_state_dict_keys.json", False),
    ("vqfr/vqfr_weights_checksums.json", True),
]
# The official READMEs travel with the data (weight formula, cases, tolerances, noise figures).
READMES = [("README.md", "official-README.md"), ("vqfr/README.md", "vqfr/official-README.md")]

XZ_PRESET = 9 | lzma.PRESET_EXTREME


def quant_step(check: dict) -> float:
    """Rounding to a multiple of ``step`` errs by at most step/2 (rms step/sqrt(12))."""
    if check["kind"] == "fp16":
        # The full images are most of the bytes, and float16 itself is hard to beat: xz of the
        # exact float16 bits is ~1.2 MB per image, ~1.05 MB at error <= abs/4, and an error of
        # abs/10 costs more than the exact bits. Near 0 the check allows abs - e while ours -
        # stored can reach e + noise, so e = abs/4 keeps a 2x margin; e = abs/2 failed (B_out).
        return check["abs"] / 2  # error <= abs/4
    step = check["max_abs"] / 5  # error <= tolerance/10
    if "rms" in check:
        step = min(step, check["rms"] / 10 * np.sqrt(12))  # rms error <= rms tolerance/10
    # round down to one significant digit (1.04e-4 -> 1e-4): a readable step, never a coarser one
    exp = int(np.floor(np.log10(step)))
    return float(np.floor(step / 10.0**exp + 1e-9)) * 10.0**exp


def npy_xz(arr: np.ndarray, filters=None) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    if filters:
        return lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, filters=filters)
    return lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, preset=XZ_PRESET)


def shuffle(arr: np.ndarray) -> np.ndarray:
    """Little-endian values -> byte planes (itemsize, n) uint8 (inverse: golden_data.unshuffle)."""
    le = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).reshape(-1)
    return np.ascontiguousarray(le.view(np.uint8).reshape(-1, arr.itemsize).T)


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def build(source: Path, out: Path) -> dict:
    """Write the compact files into ``out`` and return the manifest."""
    arrays: dict[str, dict] = {}
    stored_src: dict[str, np.ndarray] = {}
    decoded_err: dict[str, np.ndarray] = {}  # stored - official, float64
    for name, check_name in ARRAYS:
        src_path = source / f"{name}.npy"
        ref = np.load(src_path, allow_pickle=False)
        check = CHECKS[check_name]
        entry = {
            "source": f"{name}.npy",
            "source_sha256": sha256(src_path.read_bytes()),
            "source_dtype": str(ref.dtype),
            "shape": list(ref.shape),
            "check": check_name,
        }
        # a bit-identical leading-axis slice of an array already stored
        for other, big in stored_src.items():
            if big.dtype == ref.dtype and big.ndim == ref.ndim and big.shape[1:] == ref.shape[1:] and big.shape[0] > ref.shape[0]:
                for start in range(big.shape[0] - ref.shape[0] + 1):
                    if np.array_equal(big[start : start + ref.shape[0]], ref):
                        entry |= {"slice_of": other, "slice": [start, start + ref.shape[0]]}
                        entry |= {k: arrays[other][k] for k in ("encoding", "step") if k in arrays[other]}
                        diff = decoded_err[other][start : start + ref.shape[0]]
                        entry["storage_error"] = {"max_abs": float(np.abs(diff).max()), "rms": float(np.sqrt((diff**2).mean()))}
                        break
            if "slice_of" in entry:
                break
        if "slice_of" not in entry:
            filters = None
            if check["kind"] == "exact":
                entry["encoding"] = "exact"
                stored = ref
                if ref.dtype == np.uint8 and ref.ndim == 3 and ref.shape[-1] == 3:
                    # RGB HWC: xz's delta filter (distance 3 bytes) predicts each sample from the pixel to its left
                    filters = [{"id": lzma.FILTER_DELTA, "dist": 3}, {"id": lzma.FILTER_LZMA2, "preset": XZ_PRESET}]
                diff = np.zeros(ref.shape)
            else:
                step = quant_step(check)
                q = np.rint(ref.astype(np.float64) / step)
                dtype = np.int16 if np.abs(q).max() < 2**15 - 1 else np.int32
                stored = q.astype(dtype)
                diff = stored.astype(np.float64) * step - ref.astype(np.float64)
                entry |= {"encoding": "quantized", "step": step}
            if stored.itemsize > 1:
                entry |= {"shuffled": True, "stored_dtype": stored.dtype.newbyteorder("<").str}
                stored = shuffle(stored)
            blob = npy_xz(stored, filters)
            file = f"{name}.{'q' if entry['encoding'] == 'quantized' else 'x'}.npy.xz"
            (out / file).parent.mkdir(parents=True, exist_ok=True)
            (out / file).write_bytes(blob)
            entry |= {"file": file, "file_sha256": sha256(blob), "bytes": len(blob)}
            entry["storage_error"] = {"max_abs": float(np.abs(diff).max()), "rms": float(np.sqrt((diff**2).mean()))}
            stored_src[name] = ref
            decoded_err[name] = diff
        arrays[name] = entry

    jsons = {}
    for name, compress in JSONS:
        raw = (source / name).read_bytes()
        file = name + (".xz" if compress else "")
        (out / file).parent.mkdir(parents=True, exist_ok=True)
        (out / file).write_bytes(lzma.compress(raw, preset=XZ_PRESET) if compress else raw)
        jsons[name] = {"file": file, "sha256": sha256(raw)}
    for src, dst in READMES:
        (out / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / src, out / dst)

    return {
        "about": "Compact copy of the official CodeFormer/VQFR parity data; see README.md. Written by make_golden.py.",
        "source_readmes": {src: sha256((source / src).read_bytes()) for src, _ in READMES},
        "checks": CHECKS,
        "arrays": arrays,
        "json": jsons,
    }


def verify(out: Path, source: Path) -> list[str]:
    """Read every reference back with the tests' loader and compare with the official files."""
    problems = []
    g = Golden(out)
    manifest = g.manifest
    for name, entry in manifest["arrays"].items():
        src_bytes = (source / entry["source"]).read_bytes()
        if sha256(src_bytes) != entry["source_sha256"]:
            problems.append(f"{name}: the official file changed since tests/data was built")
            continue
        ref = np.load(source / entry["source"], allow_pickle=False)
        try:
            ours = g.array(name)
        except Exception as exc:  # noqa: BLE001 (report every damaged file, not just the first)
            problems.append(f"{name}: {exc}")
            continue
        if ours.shape != ref.shape:
            problems.append(f"{name}: shape {ours.shape} != {ref.shape}")
        elif entry["encoding"] == "exact":
            if ours.dtype != ref.dtype or not np.array_equal(ours, ref):
                problems.append(f"{name}: not bit-identical to the official array")
        else:
            diff = ours - ref.astype(np.float64)
            e_max, e_rms = g.storage_error(name)
            if float(np.abs(diff).max()) > e_max or float(np.sqrt((diff**2).mean())) > e_rms * (1 + 1e-9):
                problems.append(f"{name}: storage error larger than the manifest says")
            tol = manifest["checks"][entry["check"]]
            bound = tol.get("max_abs", tol.get("abs"))
            if e_max > bound / 2 + 1e-12:
                problems.append(f"{name}: storage error {e_max:.3g} uses more than half the tolerance {bound:g}")
    for name, stored in manifest["json"].items():
        if sha256((source / name).read_bytes()) != stored["sha256"] or g.json(name) != json.loads((source / name).read_text()):
            problems.append(f"{name}: differs from the official file")
    for src, dst in READMES:
        if (source / src).read_bytes() != (out / dst).read_bytes():
            problems.append(f"{dst}: differs from the official {src}")
    return problems


def default_source() -> Path:
    env = os.environ.get("VIDEOFIX_GOLDEN")
    return Path(env) if env else REPO.parent / "shared" / "golden"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=default_source(), help="official reference folder (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=HERE, help="where to write (default: this folder)")
    ap.add_argument("--check", action="store_true", help="verify the existing data against --source; write nothing")
    args = ap.parse_args(argv)
    if not (args.source / "codeformer_state_dict_keys.json").is_file() or not (args.source / "vqfr" / "README.md").is_file():
        print(f"error: {args.source} is not the official reference folder (codeformer_state_dict_keys.json, vqfr/)", file=sys.stderr)
        return 2

    if not args.check:
        tmp = args.out / ".build"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        manifest = build(args.source, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
        problems = verify(tmp, args.source)
        if problems:
            print("error: the rebuilt data do not verify:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        # replace the generated files only (this script, README.md stay)
        for old in list(args.out.rglob("*.xz")) + [args.out / MANIFEST]:
            if ".build" not in old.parts and old.exists():
                old.unlink()
        for new in sorted(tmp.rglob("*")):
            if new.is_file():
                dst = args.out / new.relative_to(tmp)
                dst.parent.mkdir(parents=True, exist_ok=True)
                new.replace(dst)
        shutil.rmtree(tmp)

    problems = verify(args.out, args.source)
    if problems:
        print("tests/data/golden does not match the official data:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    manifest = json.loads((args.out / MANIFEST).read_text())
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    n = len(manifest["arrays"])
    print(f"{'verified' if args.check else 'rebuilt and verified'}: {n} arrays, {len(manifest['json'])} JSON files, {total / 1e6:.2f} MB in {args.out}")
    for name, e in manifest["arrays"].items():
        tol = manifest["checks"][e["check"]]
        bound = tol.get("max_abs", tol.get("abs", 0.0))
        where = f"= {e['slice_of']}[{e['slice'][0]}:{e['slice'][1]}]" if "slice_of" in e else f"{e['bytes'] / 1e3:7.0f} kB"
        share = f"{e['storage_error']['max_abs'] / bound:5.0%} of tol" if bound else "exact"
        print(f"  {name:36s} {where:>24s}  {e['encoding']:9s} storage err {e['storage_error']['max_abs']:.2e} ({share})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

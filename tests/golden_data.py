"""The CodeFormer / VQFR parity reference data the golden tests read, and their checks.

By default the data come from the repository, ``tests/data/golden`` (built from the official
reference folder by ``tests/data/golden/make_golden.py``; its README says how they are stored).
Set ``VIDEOFIX_GOLDEN`` to an official reference folder (``shared/golden``, the one with
``codeformer_state_dict_keys.json`` and ``vqfr/``) to run the same checks on the full-precision
official files instead.

Names are the official file names without ``.npy`` (``"A_logits_float32"``,
``"vqfr/A_out_float16"``). ``array(name)`` gives the reference: the exact official array for
integer / uint8 data and the LUT, float64 for the floating-point results (which the repository
stores quantized, see ``storage_error``). ``check(ours, name)`` applies the official README
tolerance for that file, made stricter by the storage error, so passing here still means
``|ours - official| <= README tolerance``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import lzma
import os
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "golden"
MANIFEST = "manifest.json"


class GoldenDataError(RuntimeError):
    """The reference data are missing, damaged or out of date."""


def decode_npy_xz(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(lzma.decompress(blob)), allow_pickle=False)


def unshuffle(planes: np.ndarray, dtype: str, shape: list[int]) -> np.ndarray:
    """Byte planes ``(itemsize, n)`` uint8 (plane k = byte k of every little-endian value) back
    to the array: the inverse of the generator's byte shuffle, which lets xz see the slowly
    varying high bytes together."""
    dt = np.dtype(dtype).newbyteorder("<")
    return np.ascontiguousarray(planes.T).view(dt).reshape(shape).astype(dt.newbyteorder("="))


class Golden:
    """One reference set: the repository copy (default) or an official folder."""

    def __init__(self, data: Path = DATA, official: Path | None = None):
        self.data = data
        self.official = official
        path = data / MANIFEST
        if not path.is_file():
            raise GoldenDataError(f"{path} is missing: rebuild it with tests/data/golden/make_golden.py")
        self.manifest = json.loads(path.read_text())
        self.entries: dict[str, dict] = self.manifest["arrays"]

    # ---------------------------------------------------------------- the reference values

    def array(self, name: str) -> np.ndarray:
        """The reference ``name`` (a fresh, writable copy)."""
        return self._array(name).copy()

    @functools.lru_cache(maxsize=None)  # noqa: B019 (a handful of instances per process)
    def _array(self, name: str) -> np.ndarray:
        entry = self._entry(name)
        if self.official is not None:
            ref = np.load(self.official / f"{name}.npy", allow_pickle=False)
            return ref if entry["encoding"] == "exact" else ref.astype(np.float64)
        if "slice_of" in entry:
            start, stop = entry["slice"]
            return self._array(entry["slice_of"])[start:stop]
        blob = (self.data / entry["file"]).read_bytes()
        if hashlib.sha256(blob).hexdigest() != entry["file_sha256"]:
            raise GoldenDataError(f"{entry['file']}: checksum mismatch (damaged, or a git-lfs pointer?)")
        stored = decode_npy_xz(blob)
        if entry.get("shuffled"):
            stored = unshuffle(stored, entry["stored_dtype"], entry["shape"])
        if entry["encoding"] == "exact":
            ref = stored
        elif entry["encoding"] == "quantized":
            ref = stored.astype(np.float64) * entry["step"]
        else:
            raise GoldenDataError(f"{name}: unknown encoding {entry['encoding']!r}")
        if list(ref.shape) != entry["shape"]:
            raise GoldenDataError(f"{name}: shape {ref.shape} != {entry['shape']}")
        ref.setflags(write=False)
        return ref

    def json(self, name: str):
        """An official JSON file (``codeformer_state_dict_keys.json``, ``vqfr/...``)."""
        if self.official is not None:
            return json.loads((self.official / name).read_text())
        stored = self.manifest["json"][name]
        raw = (self.data / stored["file"]).read_bytes()
        text = lzma.decompress(raw) if stored["file"].endswith(".xz") else raw
        if hashlib.sha256(text).hexdigest() != stored["sha256"]:
            raise GoldenDataError(f"{stored['file']}: checksum mismatch")
        return json.loads(text)

    def storage_error(self, name: str) -> tuple[float, float]:
        """(max abs, rms) of stored - official; (0, 0) when reading the official files."""
        if self.official is not None:
            return 0.0, 0.0
        err = self._entry(name)["storage_error"]
        return err["max_abs"], err["rms"]

    def tolerance(self, name: str) -> dict:
        """The official README tolerance for this file: ``{"kind": "exact"}``, ``{"kind":
        "max_abs", "max_abs": T[, "rms": R]}`` or ``{"kind": "fp16", "abs": A, "rel": B}``."""
        return self.manifest["checks"][self._entry(name)["check"]]

    # ------------------------------------------------------------------------- the checks

    def check(self, ours, name: str) -> dict:
        """Assert that ``ours`` (tensor or array, same shape as the reference) matches the
        reference ``name`` within the README tolerance minus the storage error. Returns the
        measured figures; with ``VIDEOFIX_GOLDEN_REPORT=file`` set they are also appended to
        that file as one JSON line per check (to see how much margin each check has)."""
        figures = self._check(ours, name)
        report = os.environ.get("VIDEOFIX_GOLDEN_REPORT")
        if report:
            with open(report, "a") as f:
                f.write(json.dumps({"name": name, "official": self.official is not None, **figures}) + "\n")
        return figures

    def _check(self, ours, name: str) -> dict:
        if hasattr(ours, "detach"):
            ours = ours.detach().cpu().numpy()
        ours = np.asarray(ours)
        ref = self._array(name)
        if ours.shape != ref.shape:
            raise AssertionError(f"{name}: shape {ours.shape} != reference {ref.shape}")
        tol = self.tolerance(name)
        if tol["kind"] == "exact":
            bad = int((ours.astype(np.int64) != ref.astype(np.int64)).sum())
            if bad:
                raise AssertionError(f"{name}: {bad} of {ref.size} values differ (exact match required)")
            return {"differ": 0}
        e_max, e_rms = self.storage_error(name)
        diff = ours.astype(np.float64) - ref
        if not np.isfinite(diff).all():
            raise AssertionError(f"{name}: non-finite values")
        got_max = float(np.abs(diff).max())
        got_rms = float(np.sqrt((diff**2).mean()))
        if tol["kind"] == "max_abs":
            limit = tol["max_abs"] - e_max
            if got_max > limit:
                raise AssertionError(f"{name}: max |diff| {got_max:.3g} > {limit:.3g} (README {tol['max_abs']:g} - storage {e_max:.2g})")
            if "rms" in tol:
                rms_limit = tol["rms"] - e_rms
                if got_rms > rms_limit:
                    raise AssertionError(f"{name}: rms diff {got_rms:.3g} > {rms_limit:.3g} (README {tol['rms']:g} - storage {e_rms:.2g})")
            return {"max_abs": got_max, "rms": got_rms, "limit": limit, "worst_fraction": got_max / limit}
        if tol["kind"] == "fp16":
            # README: |official - ours| <= abs + rel*|official|; with |stored - official| <= e:
            # |ours - stored| <= abs + rel*|stored| - e*(1 + rel) implies it.
            allowed = tol["abs"] + tol["rel"] * np.abs(ref) - e_max * (1 + tol["rel"])
            excess = np.abs(diff) - allowed
            bad = int((excess > 0).sum())
            if bad:
                raise AssertionError(
                    f"{name}: {bad} values outside {tol['abs']:g} + {tol['rel']:g}*|ref| (storage error {e_max:.2g}); "
                    f"max |diff| {got_max:.3g}, worst excess {float(excess.max()):.3g}"
                )
            return {"max_abs": got_max, "rms": got_rms, "worst_fraction": float((np.abs(diff) / allowed).max())}
        raise GoldenDataError(f"{name}: unknown check kind {tol['kind']!r}")

    def _entry(self, name: str) -> dict:
        try:
            return self.entries[name]
        except KeyError:
            raise GoldenDataError(f"no reference named {name!r} in {self.data / MANIFEST}") from None


@functools.lru_cache(maxsize=1)
def golden() -> Golden:
    """The reference set the tests use: ``VIDEOFIX_GOLDEN`` (an official folder) when set,
    otherwise the repository copy in tests/data/golden."""
    official = os.environ.get("VIDEOFIX_GOLDEN")
    if official:
        root = Path(official)
        if not (root / "codeformer_state_dict_keys.json").is_file():
            raise GoldenDataError(f"VIDEOFIX_GOLDEN={official} is not an official reference folder")
        return Golden(official=root)
    return Golden()

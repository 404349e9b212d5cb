"""Device and precision choices, validated up front with one clear line each."""

from __future__ import annotations

import torch

from videofix.errors import DeviceError, UsageError

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.

    Raises:
        DeviceError: CUDA / MPS asked for but not usable, or no GPU number N.
        UsageError: an unknown device name.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("mps: Apple MPS is not available on this machine", option="device")
        return torch.device("mps")
    if text == "cuda" or text.startswith("cuda:"):
        index_text = text[5:] if text.startswith("cuda:") else ""
        if index_text and not index_text.isdigit():
            raise UsageError(f"{spec}: expected cuda:N with N a GPU number", option="device")
        if not torch.cuda.is_available():
            build = "a CPU-only torch build" if torch.version.cuda is None else "no usable GPU or driver"
            raise DeviceError(f"{spec}: CUDA is not available ({build}); use cpu", option="device")
        if index_text:
            count = torch.cuda.device_count()
            if int(index_text) >= count:
                raise DeviceError(f"{spec}: there are {count} CUDA device(s) (cuda:0..cuda:{count - 1})", option="device")
            return torch.device("cuda", int(index_text))
        return torch.device("cuda")
    raise UsageError(f"{spec}: expected auto, cpu, cuda, cuda:N or mps", option="device")


def resolve_dtype(name: str | torch.dtype | None, device: torch.device | str) -> torch.dtype:
    """``"fp32"`` / ``"fp16"`` / ``"bf16"`` -> torch dtype, refused where ``device`` cannot run it.

    fp16 needs CUDA (or MPS); bf16 needs a CUDA GPU with bf16 support (compute capability
    8.0+) or the CPU. fp32 works everywhere and is what the parity tests use.

    Raises:
        DeviceError: the precision is not supported on ``device``.
        UsageError: an unknown precision name.
    """
    device = torch.device(device)
    if isinstance(name, torch.dtype):
        dtype = name
        label = str(name).replace("torch.", "")
    else:
        label = (name or "fp32").strip().lower()
        if label not in DTYPES:
            raise UsageError(f"{name}: expected fp32, fp16 or bf16", option="dtype")
        dtype = DTYPES[label]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise UsageError(f"{label}: expected fp32, fp16 or bf16", option="dtype")
    if dtype == torch.float16 and device.type not in ("cuda", "mps"):
        raise DeviceError(f"{label} needs a CUDA GPU; on {device.type} use fp32 (or bf16)", option="dtype")
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"{label}: this GPU has no bfloat16 support; use fp16 or fp32", option="dtype")
    if dtype == torch.bfloat16 and device.type == "mps":
        raise DeviceError(f"{label} is not supported on MPS; use fp16 or fp32", option="dtype")
    return dtype


def with_index(device: str | torch.device) -> torch.device:
    """`device` with its GPU number written out: a bare ``torch.device("cuda")`` means "the
    current GPU" wherever it is used later (another thread, another library's default), so the
    number is fixed once, here. Other devices are returned as they are. Pure logic: no GPU is
    needed (a bare "cuda" on a machine without CUDA is GPU 0)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return device


def companion_device(restorer: str | torch.device, requested: str | torch.device | None = None) -> torch.device:
    """Where a network that serves the restorer runs (face detector, face parser, shot detector).

    requested None, "" or "auto": the restorer's own GPU when the restorer runs on CUDA, its
    number kept (``cuda:1`` -> ``torch.device("cuda", 1)``); the CPU otherwise (CPU or MPS
    restorer: the detectors and the parser are tested on the CPU and CUDA only). A requested
    torch.device is taken as it is; a requested name is checked with `resolve_device`.
    """
    if isinstance(requested, torch.device):
        return with_index(requested)
    if requested is not None and requested.strip().lower() not in ("", "auto"):
        return with_index(resolve_device(requested))
    restorer = torch.device(restorer)
    return with_index(restorer) if restorer.type == "cuda" else torch.device("cpu")

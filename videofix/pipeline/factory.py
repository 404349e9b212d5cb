"""The stage factory: the heavy objects a run needs (restorer, face detector, face parser),
built once from the settings, and the temporal engine over them.

Every runner and front-end builds its stages here: the local runner, the Ray actors, the
frames API, the VapourSynth filter and the ComfyUI nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from videofix.models.device import companion_device, with_index
from videofix.settings import RestoreSettings


@dataclass(frozen=True)
class StageDevices:
    """Where each network of a run goes: the restorer on the device the user named, the
    face detector, the face parser and the shot detector (TransNetV2) beside it
    (`videofix.models.device.companion_device`): ``--device cuda:1`` puts all four on
    ``torch.device("cuda", 1)``, ``--device cpu`` all four on the CPU."""

    restorer: torch.device
    detector: torch.device
    parser: torch.device
    shots: torch.device


def stage_devices(restorer: str | torch.device, det_device: str | torch.device | None = None) -> StageDevices:
    """The devices of a run whose restorer is on `restorer` (a resolved device: pure logic,
    no GPU is touched). det_device: where the detector, the parser and the shot detector go;
    None / "auto": beside the restorer (its CUDA device with its number, else the CPU)."""
    restorer = with_index(restorer)
    helper = companion_device(restorer, det_device)
    return StageDevices(restorer=restorer, detector=helper, parser=helper, shots=helper)


@dataclass
class LoadedStages:
    """The heavy objects a run needs, built once (also reused by the Ray actors).
    devices: where each network runs (default: `stage_devices(device)`)."""

    model: torch.nn.Module
    detector: object
    parser: object | None
    device: torch.device
    devices: StageDevices | None = None

    def __post_init__(self) -> None:
        if self.devices is None:
            self.devices = stage_devices(self.device)


def load_stages(settings: RestoreSettings, *, need_detector: bool = True, quiet: bool = True,
                det_device: str | torch.device | None = None) -> LoadedStages:
    """Build the restorer, the detector and (when its file is present) the face parser, each
    on its device of `stage_devices` (det_device: see there)."""
    from videofix.faces import create_detector, load_face_parser
    from videofix.models import load_restorer

    model = load_restorer(settings.weights, settings.models_dir, settings.model, settings.device, settings.dtype,
                          download=settings.download, quiet=quiet)
    devices = stage_devices(next(model.parameters()).device, det_device)
    detector = create_detector(settings.detector, settings.models_dir, str(devices.detector),
                               score_threshold=settings.det_threshold) if need_detector else None
    parser = None
    if settings.parsing:
        parser = load_face_parser(settings.models_dir, device=str(devices.parser), download=False)
    return LoadedStages(model, detector, parser, devices.restorer, devices)


def make_engine(stages: LoadedStages, settings: RestoreSettings):
    """The temporal engine; the network only ever sees batches of one fixed size
    (`fixed_batch_model`), so a face's output does not depend on its batch neighbours and the
    Ray runner's segments give the same frames as one piece."""
    from videofix.restore.batching import fixed_batch_model
    from videofix.restore.temporal import TemporalRestorer

    model = fixed_batch_model(stages.model, stages.device, settings.batch_size)
    return TemporalRestorer(model, radius=settings.temporal_radius, fidelity=settings.fidelity,
                            batch_size=settings.batch_size, device=stages.device)

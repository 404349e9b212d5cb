"""The stage factory: the heavy objects a run needs (restorer, face detector, face parser),
built once from the settings, and the temporal engine over them.

Every runner and front-end builds its stages here: the local runner, the Ray actors, the
frames API, the VapourSynth filter and the ComfyUI nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from videofix.settings import RestoreSettings


@dataclass
class LoadedStages:
    """The heavy objects a run needs, built once (also reused by the Ray actors)."""

    model: torch.nn.Module
    detector: object
    parser: object | None
    device: torch.device


def load_stages(settings: RestoreSettings, *, need_detector: bool = True, quiet: bool = True) -> LoadedStages:
    """Build the restorer, the detector and (when its file is present) the face parser."""
    from videofix.faces import create_detector, load_face_parser
    from videofix.models import load_restorer

    model = load_restorer(settings.weights, settings.models_dir, settings.model, settings.device, settings.dtype,
                          download=settings.download, quiet=quiet)
    device = next(model.parameters()).device
    det_device = str(device) if device.type == "cuda" else "cpu"  # cuda:1 stays cuda:1
    detector = create_detector(settings.detector, settings.models_dir, det_device,
                               score_threshold=settings.det_threshold) if need_detector else None
    parser = None
    if settings.parsing:
        parser = load_face_parser(settings.models_dir, device=det_device, download=False)
    return LoadedStages(model, detector, parser, device)


def make_engine(stages: LoadedStages, settings: RestoreSettings):
    """The temporal engine; the network only ever sees batches of one fixed size
    (`fixed_batch_model`), so a face's output does not depend on its batch neighbours and the
    Ray runner's segments give the same frames as one piece."""
    from videofix.restore.batching import fixed_batch_model
    from videofix.restore.temporal import TemporalRestorer

    model = fixed_batch_model(stages.model, stages.device, settings.batch_size)
    return TemporalRestorer(model, radius=settings.temporal_radius, fidelity=settings.fidelity,
                            batch_size=settings.batch_size, device=stages.device)

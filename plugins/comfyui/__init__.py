"""videofix for ComfyUI: temporally stable face restoration of videos (CodeFormer, VQFR).

The node pack is the repository root (its ``__init__.py`` imports this package): install
it with ComfyUI-Manager, the Comfy registry, or ``git clone`` into ``ComfyUI/custom_nodes/``
followed by ``pip install -r requirements.txt`` in the clone (see README.md here). Model
files: ``models/facerestore_models`` (codeformer.pth, VQFR_v2.pth), ``models/facedetection``
(detection_Resnet50_Final.pth, parsing_parsenet.pth) and ``models/insightface/models/buffalo_l``,
the folders other face-restoration packs use, plus their extra_model_paths.yaml entries.
Example workflows: ``example_workflows/`` at the repository root.

ComfyUI imports a pack folder as a package (its path as the module name), so the nodes
module is imported relatively.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, register_model_folders

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

"""videofix for ComfyUI: temporally stable face restoration of videos (CodeFormer, VQFR).

Install: put (or link) this folder into ``ComfyUI/custom_nodes/`` (e.g. as
``custom_nodes/videofix``) and install the ``videofix`` package into ComfyUI's Python
(``pip install videofix``, or ``pip install -e`` of a checkout). Model files go in
``models/facerestore_models`` (codeformer.pth) and ``models/facedetection``
(detection_Resnet50_Final.pth, parsing_parsenet.pth), the folders other face-restoration
packs use. Example workflows: ``workflows/`` of the videofix repository.

ComfyUI imports this folder as a package (its path as the module name), so the nodes
module is imported relatively.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, register_model_folders

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

"""videofix as a ComfyUI node pack: the repository root is the pack folder.

ComfyUI-Manager and the Comfy registry install a pack by putting the repository in
``ComfyUI/custom_nodes/<name>`` and running ``pip install -r requirements.txt`` there (which
installs the ``videofix`` package from this clone); ComfyUI then imports this file as a
package named after the folder's path. The nodes themselves live in ``plugins/comfyui``
(imported relatively, so the folder may have any name); example workflows are in
``example_workflows/``.

Importing this does no work beyond defining the nodes and registering ComfyUI's model
folders: no model is loaded, nothing is downloaded or written (model files are resolved
when a loader node runs). Imported outside ComfyUI (no ``folder_paths`` module: a tool
walking the repository) it defines no nodes.
"""

import importlib.util as _util
import sys as _sys

# ComfyUI has imported folder_paths before it imports any pack
if "folder_paths" not in _sys.modules and _util.find_spec("folder_paths") is None:
    NODE_CLASS_MAPPINGS: dict = {}
    NODE_DISPLAY_NAME_MAPPINGS: dict = {}
else:
    try:
        from .plugins.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    except ModuleNotFoundError as exc:
        if exc.name != "videofix" and not str(exc.name or "").startswith("videofix."):
            raise
        import os as _os

        # ComfyUI logs this and starts without the pack: say what to run.
        raise ImportError(
            f"the videofix package is not installed in this Python: run `{_sys.executable} -m pip install "
            f"-r requirements.txt` in {_os.path.dirname(_os.path.abspath(__file__))}"
        ) from None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

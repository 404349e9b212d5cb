"""Regenerate ``vhs_object_info.json``: VideoHelperSuite's node definitions, pinned.

VideoHelperSuite (VHS) is a git repository, not a package in any registry, so the test
machine cannot install it; tests/test_comfyui_browser.py checks the VHS nodes of
``example_workflows/restore_video_vhs.json`` against this pinned copy of what VHS's nodes report
in ComfyUI's ``/object_info`` (their inputs with types, combos and limits, outputs).

To regenerate: put a VHS checkout in a ComfyUI's ``custom_nodes/`` (with a video in its
``input/`` folder), start ComfyUI, then::

    python tests/data/make_vhs_object_info.py http://127.0.0.1:8188 --source "ComfyUI-VideoHelperSuite 1.7.9 (git 4ee72c0)"

Only the nodes the workflows use are kept, without their long HTML descriptions.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

NODES = ("VHS_LoadVideo", "VHS_VideoInfoSource", "VHS_VideoCombine")
OUT = Path(__file__).with_name("vhs_object_info.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="a running ComfyUI with VideoHelperSuite, e.g. http://127.0.0.1:8188")
    ap.add_argument("--source", required=True, help="VHS version and commit, recorded in the file")
    args = ap.parse_args()
    nodes = {}
    for name in NODES:
        with urllib.request.urlopen(f"{args.url.rstrip('/')}/object_info/{name}", timeout=30) as resp:
            info = json.loads(resp.read())[name]
        info.pop("description", None)
        nodes[name] = info
    doc = {"source": args.source,
           "note": "VHS_LoadVideo's 'video' combo lists the video files of ComfyUI's input folder",
           "nodes": nodes}
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

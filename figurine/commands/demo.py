"""figurine demo: a boxed figure with nothing downloaded, to see the whole pipeline run.

    figurine demo                      # writes figurine-demo.png (+ .json, .run/) here
    figurine demo -o /tmp/demo.png

1. The tiny weights: random models with the real file layout (figurine.tiny.weights), built once
   into the cache folder ($XDG_CACHE_HOME/figurine/tiny-weights, about 15 MB, ~10 s) and reused.
2. A drawn test face (figurine.tiny.photos): no real person, no photo of yours needed.
3. The real pipeline on them with the tiny settings (configs/tiny.toml): identity, pose, figure,
   accessories, cut-outs, the box, provenance. The figure is noise by design: the weights are
   random. Real figures need `figurine weights fetch` and a GPU (see the README).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="make a boxed figure with tiny random weights: nothing to download",
                       description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", type=Path, default=Path("figurine-demo.png"), metavar="OUT.png",
                   help="the package picture (default: figurine-demo.png)")
    p.add_argument("--name", default="Ada Lovelace", help="the name on the box")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    return p


def tiny_weights() -> Path:
    """The tiny weights tree in the cache folder, built once (whole, or not at all)."""
    from figurine.data import cache_dir
    from figurine.tiny.weights import write_tree

    root = cache_dir() / "tiny-weights"
    done = root / ".complete"
    if done.is_file():
        return root
    print(f"building the tiny test weights once in {root} (about 10 s)")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-weights-", dir=root.parent))
    try:
        write_tree(staging)
        (staging / ".complete").write_text("figurine tiny weights\n")
        if root.exists():
            shutil.rmtree(root)  # an interrupted earlier build
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def run(args) -> int:
    from figurine.config import load_config
    from figurine.data import config_file
    from figurine.pipeline import FigurinePipeline
    from figurine.request import Photo, Request
    from figurine.tiny.photos import make_face_photo

    weights = tiny_weights()
    with tempfile.TemporaryDirectory() as tmp:  # the drawn face is made in memory, via a temp file
        face = Photo("the drawn test face", make_face_photo(Path(tmp) / "face.jpg").read_bytes())
    pipe = FigurinePipeline(load_config([config_file("tiny")], weights=weights))
    result = pipe(Request(name=args.name, tagline="Demo Figure", photos=[face], accessories=["tea cup"],
                          output=args.output, force=args.force))
    print(f"wrote {result.output} (run directory {result.run_dir})")
    print("The figure is noise by design: the demo's weights are tiny and random. For a real figure: "
          "`figurine weights fetch` (about 10 GB), then `figurine make PHOTO --name NAME` on a GPU.")
    return 0

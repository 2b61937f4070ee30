"""figurine pack: draw the package around a figure picture (no model weights needed).

    figurine pack figure.png --name "Ada Lovelace" --tagline "Analytical Engine Pilot" \\
        --accessory-image mug.png --template vintage-80s -o ada.png --pdf ada.pdf

The figure (and each accessory) may be an RGBA cut-out or a picture on a plain backdrop,
which is keyed out (figurine/matte.py). A picture where nothing stands out from the backdrop
(or a fully transparent cut-out) is packaged whole with one line naming the file, as `figurine
make` does. `figurine make` draws its box with the same renderer; `--run RUN_DIR` re-boxes a
make run from its cached cut-outs.

1. Check the arguments: text, template, input files, outputs (never overwrite without
   --force).
2. Load the pictures.
3. Render the PNG and/or the PDF, each written atomically (figurine/outputs.py), so a crash
   never leaves half a file.
"""

from __future__ import annotations

from pathlib import Path

from figurine.commands._common import template_help
from figurine.errors import InputError
from figurine.limits import MAX_ACCESSORY_SLOTS as MAX_ACCESSORIES
from figurine.limits import SIZES
from figurine.request import MAX_EDITION


def add_parser(sub):
    p = sub.add_parser("pack", help="draw the toy package around a figure picture",
                       description="Compose a finished toy package (PNG and/or print PDF) around "
                                   "a figure picture; no model weights needed.")
    p.add_argument("figure", metavar="FIGURE", nargs="?",
                   help="figure picture: RGBA cut-out or on a plain backdrop")
    p.add_argument("--run", type=Path, metavar="RUN_DIR",
                   help="recompose a `figurine make` run from its cached cut-outs (no model, no FIGURE)")
    p.add_argument("--name", help="name on the package (1-40 characters)")
    p.add_argument("--tagline", default=None, help="line under the name (up to 60 characters)")
    p.add_argument("--brand", default=None, help="brand line instead of the template's")
    p.add_argument("--accessory-image", action="append", default=[], metavar="IMG",
                   dest="accessory_images", help="accessory picture for the tray (repeat, up to 4)")
    p.add_argument("--template", default=None, help=template_help())
    p.add_argument("--size", choices=list(SIZES), default=None,
                   help="social (1080x1350, default) or story (1080x1920)")
    p.add_argument("--edition", type=int, default=None, help="edition number printed on the box")
    p.add_argument("-o", "--output", default=None, metavar="OUT.png",
                   help="PNG to write (default: FIGURE-pack.png unless only --pdf is given)")
    p.add_argument("--pdf", default=None, metavar="OUT.pdf",
                   help="also write a print PDF (300 DPI, 3 mm bleed, crop marks)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    return p


def run(args) -> int:
    if args.run:
        return _repack(args)
    if not args.figure:
        raise InputError("no FIGURE given", hint="figurine pack FIGURE --name NAME, or --run RUN_DIR")
    if not args.name:
        raise InputError("--name is required (the name printed on the package)")
    if args.edition is not None and not 0 <= args.edition <= MAX_EDITION:
        raise InputError(f"edition must be between 0 and {MAX_EDITION}, got {args.edition}")
    from figurine.packaging.render import PackText

    args.tagline = args.tagline or ""
    args.template = args.template or "classic-blister"
    args.size = args.size or "social"

    out_png = args.output
    if out_png is None and args.pdf is None:
        out_png = str(Path(args.figure).with_name(Path(args.figure).stem + "-pack.png"))
    written = pack_files(args.figure, args.accessory_images,
                         PackText(args.name, args.tagline, args.brand), args.template, args.size,
                         out_png, args.pdf, args.force, edition=args.edition)
    for path in written:
        print(path)
    return 0


def _repack(args) -> int:
    """`pack --run RUN_DIR`: the cached figure and accessories in a new box, in well under a second."""
    import time

    from figurine.pipeline import FigurinePipeline

    if args.figure or args.accessory_images:
        raise InputError("--run takes the figure and accessories from the run; drop FIGURE/--accessory-image")
    if args.brand:
        raise InputError("--brand is not available with --run (the run's template sets the brand line)")
    t0 = time.perf_counter()
    pipe = FigurinePipeline.for_run(args.run)
    result = pipe.rerun(args.run, output=Path(args.output) if args.output else None,
                        pdf=Path(args.pdf) if args.pdf else None, force=args.force, name=args.name,
                        tagline=args.tagline, template=args.template, size=args.size, edition=args.edition)
    print(f"wrote {result.output} from {args.run} in {time.perf_counter() - t0:.2f} s (no model loaded)")
    return 0


def pack_files(figure_path, accessory_paths, text, template: str = "classic-blister",
               size: str = "social", out_png=None, out_pdf=None, force: bool = False,
               edition: int | None = None) -> list[str]:
    """Render the package from files and write the outputs atomically; return their paths.

    `figure_path` and `accessory_paths` may also be PIL images (figurine make passes its
    in-memory cut-outs)."""
    from figurine.outputs import atomic_write
    from figurine.packaging import export_pdf, load_template, open_picture, render_image
    from figurine.packaging.render import check_fit

    # 1. Check everything before drawing anything.
    if size not in SIZES:
        raise InputError(f"unknown size '{size}'; choose social or story")
    if len(accessory_paths) > MAX_ACCESSORIES:
        raise InputError(f"{len(accessory_paths)} accessory images given; the tray holds at most {MAX_ACCESSORIES}")
    if out_png is None and out_pdf is None:
        raise InputError("nothing to write", hint="give -o OUT.png and/or --pdf OUT.pdf")
    tmpl = load_template(template)
    check_fit(text, tmpl)
    outputs = [(p, ext) for p, ext in ((out_png, ".png"), (out_pdf, ".pdf")) if p is not None]
    for path, ext in outputs:
        _check_output(Path(path), ext, force)

    # 2. The pictures, cut off their backdrops as make cuts them: a picture where nothing
    #    stands out is packaged whole, said in one line naming the file.
    figure = _cut(open_picture(figure_path, "figure"), figure_path, "the figure")
    accessories = [_cut(open_picture(p, "accessory image"), p, f"accessory {i + 1}")
                   for i, p in enumerate(accessory_paths)]

    # 3. Render and write.
    written = []
    if out_png is not None:
        image = render_image(figure, accessories, text, tmpl, size, edition)
        atomic_write(Path(out_png), lambda f: image.save(f, "PNG", optimize=False), force=force)
        written.append(str(out_png))
    if out_pdf is not None:
        atomic_write(Path(out_pdf), lambda f: export_pdf(figure, accessories, text, tmpl, f, edition), force=force)
        written.append(str(out_pdf))
    return written


def _cut(picture, source, what: str):
    """figurine.matte.Matter.cut_or_whole (colour key, or the picture's own alpha), named by
    the file as given on the command line (`what` for an in-memory picture)."""
    from PIL import Image

    from figurine.matte import Matter
    from figurine.packaging.render import opaque

    name = what if isinstance(source, Image.Image) else str(source)
    rgba, method = Matter("colour-key").cut_or_whole(picture, name)
    return opaque(picture) if method == "whole picture" else rgba


def _check_output(path: Path, ext: str, force: bool) -> None:
    from figurine.outputs import check_target

    if path.suffix.lower() != ext:
        raise InputError(f"{path}: output must end in {ext}")
    check_target(path, force)

"""The local web page: the whole `figurine make` flow in a browser, served on 127.0.0.1 only.

    from figurine.config import load_config
    from figurine.web import serve
    serve(load_config(["configs/tiny.toml"], [], "/tmp/tiny-weights"), port=7860)  # Ctrl-C stops

What the page does (everything runs in this process, on this machine's GPU):

- photo from a file or the webcam; name, tagline, up to `accessories.max` accessories; a pose
  gallery drawn from the preset skeletons; a template gallery drawn from the real packaging code
  on an example figure; seed and number of candidates.
- Generate calls the server's one FigurinePipeline (models stay loaded between clicks) with a
  progress bar fed by its stage hook. The result shows the package, every candidate with its
  identity score, the energy line, what was reused, and downloads for the PNG, the print PDF
  and the run's JSON.
- Re-pack (also on Enter in the name/tagline boxes and on a template change) is the pipeline's
  `rerun` on the session's run directory with only the text and template changed: the figure and
  accessories come from the cache and only the box is drawn again.

Privacy and safety, in the order `serve` sets them up:

1. `figurine.privacy.go_offline()` and the network guard (loopback allowed) before gradio is
   imported; Gradio's analytics are off (GRADIO_ANALYTICS_ENABLED=False), share=False.
2. One temporary workspace per server (`figurine-web-*` in the system temp folder): Gradio's
   upload/cache folder (GRADIO_TEMP_DIR) and one folder per browser session live in it. The
   photo is never written anywhere else; a session's folder and its uploads are deleted when
   its tab closes, and the whole workspace when the server stops (Ctrl-C or SIGTERM).
3. The page loads nothing from other hosts: a theme with system fonts only (Gradio's themes
   otherwise may fetch web fonts), and no external scripts.
4. One event at a time on the GPU (`queue(default_concurrency_limit=1)`; the page shows the queue
   position), uploads limited to MAX_UPLOAD, and every FigurineError shown as its one-line
   message, never a stack trace.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import shutil
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from figurine.config import Config
from figurine.errors import FigurineError, InputError, NeedsInputError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MAX_UPLOAD = "25mb"  # a phone photo is a few MB; figurine.photo also checks pixels and bytes
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue",
                "Arial", "sans-serif"]
SYSTEM_MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]
PREVIEW_SIZE = (216, 270)  # template thumbnails (the social package is 1080 x 1350)
POSE_SIZE = (150, 200)

# The pipeline's stage names as the progress bar shows them.
STAGE_LABELS = {
    "identity": "finding the face",
    "pose": "drawing the pose",
    "load": "loading the models",
    "generation": "generating the figure",
    "vae_decode": "decoding the picture",
    "identity_score": "scoring the likeness",
    "matte": "cutting out",
    "accessories": "generating the accessories",
    "packaging": "drawing the box",
}


# ---------------------------------------------------------------------------------------------
# Workspace and sessions


class Workspace:
    """The server's temporary folder: Gradio uploads under uploads/, sessions under sessions/."""

    def __init__(self, cfg: Config, parent: str | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="figurine-web-", dir=parent))
        self.uploads = self.root / "uploads"
        self.sessions = self.root / "sessions"
        self.uploads.mkdir()
        self.sessions.mkdir()
        from figurine.pipeline import FigurinePipeline

        self.pipeline = FigurinePipeline(cfg)  # the models stay loaded between Generate clicks

    def new_session(self) -> Session:
        return Session(Path(tempfile.mkdtemp(prefix="s-", dir=self.sessions)))

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Session:
    """One browser tab: its folder (run directory + outputs) and the last request it made."""

    folder: Path
    last: bool = False  # a run succeeded: its run directory can be re-packed
    uploads: set[str] = field(default_factory=set)

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    def close(self) -> None:
        """Delete the session's files and the photos it uploaded (called when the tab closes)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        for path in self.uploads:
            _remove_upload(Path(path))


def _remove_upload(path: Path) -> None:
    """Delete an uploaded file and its folder (Gradio puts each upload in a folder of its own)."""
    try:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    except OSError:
        pass


def _close_session(session: Session | None) -> None:
    if session is not None:
        session.close()


# ---------------------------------------------------------------------------------------------
# Request building (plain functions: tested without a browser)


def parse_accessories(texts) -> list[str]:
    """The accessory boxes' texts, blanks dropped (one item per box; commas stay in an item)."""
    return [t.strip() for t in texts if t and t.strip()]


def build_request(session: Session, photo: str | None, name: str, tagline: str, accessories: list[str],
                  pose: str | None, template: str | None, seed, candidates):
    """A Request writing into the session's folder (outputs replaced each time)."""
    from figurine.limits import slug
    from figurine.request import Request

    if not photo:
        raise InputError("add a photo first: upload one or take one with the webcam")
    out = session.folder / "out"
    out.mkdir(parents=True, exist_ok=True)
    stem = slug(name or "figure")
    return Request(
        photos=[Path(photo)], name=(name or "").strip(), tagline=(tagline or "").strip(),
        accessories=accessories, pose=pose or None, template=template or None,
        seed=None if seed in (None, "") else int(seed),
        candidates=None if candidates in (None, "") else int(candidates),
        output=out / f"{stem}.png", pdf=out / f"{stem}.pdf", run_dir=session.run_dir, force=True,
    )


class StageProgress:
    """The pipeline's stage hook (stage, event, info), turned into a fraction and a label."""

    def __init__(self, report, candidates: int, accessories: int):
        self.report = report  # report(fraction, label)
        # identity, pose, load, per candidate 4 stages, accessories (generate + matte), packaging
        self.expected = 3 + 4 * max(1, candidates) + 2 * accessories + 1
        self.done = 0
        self.figures = 0
        self.candidates = max(1, candidates)
        self.seen: list[str] = []

    def __call__(self, stage: str, message: str, info: dict | None = None) -> None:
        label = STAGE_LABELS.get(stage, stage)
        if message == "started":
            if stage == "generation":
                self.figures += 1
                if self.candidates > 1:
                    label += f" ({self.figures} of {self.candidates})"
            if not self.seen or self.seen[-1] != stage:
                self.seen.append(stage)
        else:
            self.done += 1
            label += ": done"
        self.report(min(0.97, self.done / self.expected), label)


def candidates_gallery(result) -> list[tuple[str, str]]:
    """(figure path, caption) per candidate: seed, identity score, which one was packaged."""
    fig = result.record["stages"]["figure"]
    items = []
    for i, (name, score, seed) in enumerate(zip(fig["files"], fig["scores"], fig["seeds"])):
        shown = "no face found" if score is None else f"identity {score:.3f}"
        mark = " · packaged" if i == fig["best"] else ""
        items.append((str(result.run_dir / name), f"seed {seed}: {shown}{mark}"))
    return items


def status_line(result, seconds: float) -> str:
    """One line: how long it took and what came from the cache."""
    if result.reused:
        return f"Re-packed in {seconds:.1f} s (reused: {', '.join(result.reused)})"
    return f"Generated in {seconds:.1f} s"


def downloads(result) -> list[str]:
    from figurine.limits import sidecar_for

    files = [result.output, result.output.with_suffix(".pdf"), sidecar_for(result.output)]
    return [str(f) for f in files if f.exists()]


# ---------------------------------------------------------------------------------------------
# Galleries


@functools.cache
def pose_previews(limb_width: float, point_radius: float) -> list[tuple[object, str]]:
    """Each preset's skeleton, drawn by the same renderer the generation uses."""
    from figurine.pose import list_presets, load_preset, render_pose

    w, h = POSE_SIZE
    # Thumbnails are small: draw the limbs thicker than the control image's scale would.
    return [(render_pose(load_preset(p.name), w, h, limb_width * 2.5, point_radius * 2.5), p.name)
            for p in list_presets()]


@functools.cache
def template_previews() -> list[tuple[object, str]]:
    """Each template drawn by figurine.packaging around an example figure and accessory."""
    from figurine import packaging

    figure, items = example_figure()
    text = packaging.PackText("Your Name", "Your Tagline")
    previews = []
    for name in packaging.list_templates():
        try:
            image = packaging.render_image(figure, items, text, template=name, size="social")
        except FigurineError as e:  # a broken template should not take the page down
            log.warning("template %s: no preview (%s)", name, e)
            continue
        image = image.convert("RGB")
        image.thumbnail(PREVIEW_SIZE)
        previews.append((image, name))
    return previews


def example_figure():
    """(figure RGBA, [accessory RGBA]) for the template previews: the toy figure and mug of
    figurine/example.py, cut out by the real matte stage."""
    from figurine import matte
    from figurine.example import accessory, figure

    return matte.cut_out(figure(384, 512)), [matte.cut_out(accessory("mug", 192))]


# ---------------------------------------------------------------------------------------------
# The page


def _theme():
    import gradio as gr

    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO)


CSS = """
#figurine-status, #figurine-energy { font-family: var(--font-mono); font-size: 0.9em; }
footer { display: none !important; }
"""


def build_app(cfg: Config, workspace: Workspace):
    """The Gradio Blocks page for one config; events call the workspace's pipeline in this process."""
    import gradio as gr

    from figurine.limits import slug
    from figurine.packaging import list_templates

    g = cfg.generation
    poses = pose_previews(cfg.pose.limb_width, cfg.pose.point_radius)
    templates = template_previews()
    template_names = list_templates()
    n_boxes = max(1, min(8, cfg.accessories.max))

    with gr.Blocks(title="figurine", analytics_enabled=False) as demo:
        session = gr.State(None, delete_callback=_close_session)
        gr.Markdown("## figurine — you, as a boxed action figure\n"
                    "Everything runs on this computer: the photo never leaves it.")
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.Image(label="Photo", sources=["upload", "webcam"], type="filepath",
                                 height=260, elem_id="figurine-photo")
                name = gr.Textbox(label="Name on the box", max_lines=1, elem_id="figurine-name")
                tagline = gr.Textbox(label="Tagline (also what the figure is dressed as)", max_lines=1,
                                     elem_id="figurine-tagline")
                with gr.Accordion(f"Accessories (up to {n_boxes}, each made on its own)", open=False):
                    acc_boxes = [gr.Textbox(show_label=False, placeholder=f"accessory {i + 1}", max_lines=1,
                                            elem_id=f"figurine-accessory-{i}") for i in range(n_boxes)]
                with gr.Row():
                    seed = gr.Number(label="Seed (-1: random)", value=g.seed, precision=0, elem_id="figurine-seed")
                    candidates = gr.Slider(1, 8, value=g.candidates, step=1, label="Candidates",
                                           elem_id="figurine-candidates")
            with gr.Column(scale=1):
                pose_gallery = gr.Gallery(value=poses, label="Pose", columns=5, height=230,
                                          allow_preview=False, object_fit="contain", buttons=[],
                                          elem_id="figurine-poses")
                pose = gr.Radio([p for _, p in poses], value=cfg.pose.preset, label="Pose",
                                show_label=False, elem_id="figurine-pose")
                template_gallery = gr.Gallery(value=templates, label="Box", columns=4, height=230,
                                              allow_preview=False, object_fit="contain", buttons=[],
                                              elem_id="figurine-templates")
                template = gr.Radio(template_names, value=cfg.packaging.template, label="Box",
                                    show_label=False, elem_id="figurine-template")
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", elem_id="figurine-generate")
            repack = gr.Button("Re-pack (text and box only)", elem_id="figurine-repack")
        with gr.Row():
            with gr.Column(scale=1):
                package = gr.Image(label="Your figure", type="filepath", interactive=False, height=480,
                                   elem_id="figurine-package")
            with gr.Column(scale=1):
                status = gr.Textbox(label="Status", interactive=False, elem_id="figurine-status")
                energy = gr.Textbox(label="Energy", interactive=False, elem_id="figurine-energy")
                figures = gr.Gallery(label="Candidates (identity score: likeness to the photo)", columns=4,
                                     height=200, object_fit="contain", allow_preview=False,
                                     elem_id="figurine-candidates-gallery")
                files = gr.File(label="Downloads: PNG, print PDF, run JSON", file_count="multiple",
                                interactive=False, elem_id="figurine-downloads")

        outputs = [package, figures, status, energy, files, session]

        def pick(names):
            def on_select(evt):
                return names[evt.index]
            on_select.__annotations__ = {"evt": gr.SelectData}  # real class: gradio reads the hint
            return on_select

        pose_gallery.select(pick([p for _, p in poses]), None, pose, queue=False)
        template_gallery.select(pick([t for _, t in templates]), None, template, queue=False)

        def run(call, sess: Session, progress, candidates: int, accessories: int) -> tuple:
            t0 = time.perf_counter()
            tracker = StageProgress(lambda f, label: progress(f, desc=label), candidates, accessories)
            pipe = workspace.pipeline
            pipe.hooks = [tracker]
            try:
                result = call(pipe)
            finally:
                pipe.hooks = []
            seconds = time.perf_counter() - t0
            sess.last = True
            return (str(result.output), candidates_gallery(result), status_line(result, seconds),
                    result.energy_line, downloads(result), sess)

        @_readable_errors
        def on_generate(photo_path, name_v, tagline_v, pose_v, template_v, seed_v, cand_v, sess, *acc,
                        progress=gr.Progress()):
            sess = sess or workspace.new_session()
            if photo_path:
                sess.uploads.add(str(photo_path))
            request = build_request(sess, photo_path, name_v, tagline_v, parse_accessories(acc), pose_v,
                                    template_v, seed_v, cand_v)
            return run(lambda pipe: pipe(request), sess, progress, request.candidates or g.candidates,
                       len(request.accessories))

        @_readable_errors
        def on_repack(name_v, tagline_v, template_v, sess, progress=gr.Progress()):
            if sess is None or not sess.last:
                return (gr.skip(),) * (len(outputs) - 1) + (sess,)
            out = sess.folder / "out"
            stem = slug(name_v or "figure")
            try:
                return run(lambda pipe: pipe.rerun(sess.run_dir, output=out / f"{stem}.png", pdf=out / f"{stem}.pdf",
                                                   force=True, name=(name_v or "").strip(),
                                                   tagline=(tagline_v or "").strip(), template=template_v or None),
                           sess, progress, 1, 0)
            except NeedsInputError:
                raise InputError("this change needs a new figure (the tagline also dresses it): "
                                 "press Generate") from None

        gen_inputs = [photo, name, tagline, pose, template, seed, candidates, session, *acc_boxes]
        # Progress (and an error badge) on the picture and the status only: a failed event
        # leaves the last good result on the page.
        generate.click(on_generate, gen_inputs, outputs, concurrency_id="gpu",
                       show_progress_on=[package, status])
        pack_inputs = [name, tagline, template, session]
        for trigger in (repack.click, name.submit, tagline.submit, template.change):
            trigger(on_repack, pack_inputs, outputs, concurrency_id="gpu", show_progress_on=[status])
    return demo


def _readable_errors(fn):
    """FigurineError -> its one-line message on the page; anything else -> a short note + log."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import gradio as gr

        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except FigurineError as e:
            raise gr.Error(str(e), title="figurine", print_exception=False) from None
        except Exception:  # a bug: its traceback goes to the terminal, not to the page
            traceback.print_exc()
            raise gr.Error("figurine hit an unexpected error; the terminal running `figurine serve` "
                           "has the details", title="figurine", print_exception=False) from None
    return wrapper


# ---------------------------------------------------------------------------------------------
# Serving


def is_loopback(host: str) -> bool:
    import ipaddress

    name = host.strip("[]").lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def serve(cfg: Config, host: str = LOOPBACK, port: int = 7860, *, ready=None) -> None:
    """Serve the page until Ctrl-C or SIGTERM, then delete the workspace.

    `host` other than loopback is the caller's explicit choice (`figurine serve --listen`).
    `ready(url)` is called once the server answers.
    """
    from figurine import privacy

    # 1. Offline switches and the network guard before gradio is imported.
    privacy.go_offline()
    privacy.install_network_guard(allow_loopback=True)
    workspace = Workspace(cfg)
    os.environ["GRADIO_TEMP_DIR"] = str(workspace.uploads)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    atexit.register(workspace.cleanup)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    import gradio as gr

    if gr.utils.get_upload_folder() != str(workspace.uploads):  # gradio imported earlier elsewhere
        log.warning("gradio was imported before figurine.web.serve; its uploads may go to %s",
                    gr.utils.get_upload_folder())
    from figurine.photo import heif_reader

    heif_reader()  # Gradio opens uploads with Pillow: iPhone photos (HEIC) too
    try:
        # 2. Build the page (pose and template previews are drawn once, here).
        demo = build_app(cfg, workspace)
        demo.queue(default_concurrency_limit=1, max_size=16)
        # 3. Launch on the chosen address only; never a share link, no browser opened.
        try:
            demo.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                        max_file_size=MAX_UPLOAD, show_error=True, quiet=True, prevent_thread_lock=True,
                        allowed_paths=[str(workspace.root)], theme=_theme(), css=CSS,
                        footer_links=[], ssr_mode=False, pwa=False, mcp_server=False)
        except OSError as e:
            raise InputError(f"cannot serve on {host}:{port}: {e}", hint="pick another --port") from None
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
        print(f"figurine: serving on {url} (Ctrl-C to stop)", flush=True)
        if ready:
            ready(url)
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("figurine: stopping", flush=True)
        finally:
            demo.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
        workspace.cleanup()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt

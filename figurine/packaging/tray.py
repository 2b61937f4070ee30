"""The tray: one compartment per accessory, either a small blister each on a printed panel
(kind "bubbles") or a moulded plastic insert with a well each (kind "insert", in a window box).

    from PIL import Image
    from figurine.packaging.card import draw_card
    from figurine.packaging.draw import Canvas
    from figurine.packaging.layout import Layout
    from figurine.packaging.template import load_template
    from figurine.packaging.tray import draw_tray
    t = load_template("classic-blister")
    c = Canvas(t["page"]["width"], t["page"]["height"], scale=4.0)
    draw_card(c, t, grow=0.0)
    mug = Image.new("RGBA", (100, 100), (60, 140, 200, 255))        # an RGBA cut-out
    layout = Layout(size=(c.w, c.h), scale=4.0)
    draw_tray(c, t, [mug, mug], layout)
    layout.compartments        # two pixel boxes, left to right
    c.to_image().save("tray.png")

The compartments share the tray box evenly (3 mm apart, at most 1.35 times as wide as high),
centred; each accessory is scaled to fit its compartment (enclosure.place).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from figurine.packaging.draw import BLACK, WHITE, Canvas, hex_color, mix, rrect, vertical_gradient
from figurine.packaging.enclosure import draw_bubble, place
from figurine.packaging.layout import Layout
from figurine.packaging.template import Template

from figurine.limits import MAX_ACCESSORY_SLOTS as MAX_ACCESSORIES  # noqa: E402  (compartments a tray holds; one source)


def _compartments(box, n: int) -> list[tuple[float, float, float, float]]:
    x, y, w, h = box
    gap = 3.0
    cw = min((w - gap * (n - 1)) / n, h * 1.35)
    total = cw * n + gap * (n - 1)
    x0 = x + (w - total) / 2
    return [(x0 + i * (cw + gap), y, cw, h) for i in range(n)]


def draw_tray(c: Canvas, t: Template, accs: list[Image.Image], layout: Layout) -> None:
    tray = t["tray"]
    comps = _compartments(tray["box"], len(accs))
    col = hex_color(tray["color"])
    if tray["kind"] == "insert":
        # A moulded plastic insert across the tray box, with a well per accessory.
        r = c.region(tray["box"], pad=1)
        s = rrect(r.X, r.Y, tray["box"], 3.0)
        c.paint(r, c.cover(r, s), vertical_gradient(r, tray["box"][1], tray["box"][1] + tray["box"][3],
                                                      [mix(col, WHITE, 0.35), mix(col, BLACK, 0.12)]), clip=True)
        for box, img in zip(comps, accs):
            inset = (box[0] + 1.5, box[1] + 1.5, box[2] - 3, box[3] - 3)
            wr = c.region(inset, pad=1)
            ws = rrect(wr.X, wr.Y, inset, 3.0)
            well = c.cover(wr, ws)
            c.paint(wr, well, mix(col, BLACK, 0.18), clip=True)
            c.paint(wr, well * np.exp(-np.maximum(-ws, 0) / 1.2), BLACK, opacity=0.35, clip=True)
            place(c, img, (inset[0] + 2, inset[1] + 2, inset[2] - 4, inset[3] - 4))
            layout.compartments.append(c.pixel_box(box))
        return
    # One small blister per accessory on a printed tray panel.
    if tray["color"]:
        pr = c.region(tray["box"], pad=3)
        panel = (tray["box"][0] - 2, tray["box"][1] - 2, tray["box"][2] + 4, tray["box"][3] + 4)
        c.paint(pr, c.cover(pr, rrect(pr.X, pr.Y, panel, 4.0)), col, opacity=0.35, clip=True)
    for box, img in zip(comps, accs):
        area = (box[0] + 2.5, box[1] + 2.5, box[2] - 5, box[3] - 5)
        draw_bubble(c, box, min(6.0, box[2] / 4), contents=lambda a=area, im=img: place(c, im, a), flange=1.5)
        layout.compartments.append(c.pixel_box(box))

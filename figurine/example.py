"""Draw a toy action figure on a plain light grey backdrop, as the generator would deliver one.

    from figurine.example import accessory, figure
    figure().save("figure.png")                   # 768 x 1024, hands on hips
    accessory("mug").save("mug.png")              # 384 x 384; also laptop, cat, gear

    python -m figurine.example figure.png                      # the same from the shell
    python scripts/draw_example_figure.py acc.png --accessory mug  # the same, from a clone

The picture is drawn entirely by this module (Pillow shapes, no outside artwork), so the
project may redistribute it and the images made from it. Hands on hips leave two backdrop
gaps between arms and body: the matting stage has to key them out. Accessories (mug, laptop,
cat, gear) are drawn the same way for the tray.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

SS = 4  # drawn 4x larger, then reduced: smooth edges
BACKDROP = (210, 210, 210)


def _plastic_light(img: Image.Image, labels: np.ndarray) -> Image.Image:
    """Light each moulded part like injection-moulded plastic: every part is 'inflated' from
    its outline (height grows with the distance to its own edge, so seams show between parts),
    then lit from the top left with a diffuse term and a glossy highlight."""
    import cv2

    rgb = np.asarray(img, np.float32) / 255.0
    out = rgb.copy()
    light = np.array([-0.45, -0.6, 0.66], np.float32)
    light /= np.linalg.norm(light)
    half = light + np.array([0, 0, 1], np.float32)
    half /= np.linalg.norm(half)
    for lab in np.unique(labels):
        if lab == 0:
            continue
        ys, xs = np.nonzero(labels == lab)
        y0, y1, x0, x1 = ys.min() - 2, ys.max() + 3, xs.min() - 2, xs.max() + 3
        y0, x0 = max(0, y0), max(0, x0)
        mask = (labels[y0:y1, x0:x1] == lab).astype(np.uint8)
        dist = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
        reach = max(4.0, float(dist.max()) * 0.9)
        height = np.sqrt(np.clip(dist / reach, 0, 1)) * reach * 0.9
        height = cv2.GaussianBlur(height, (0, 0), max(2.0, reach * 0.18))
        gy, gx = np.gradient(height)
        n = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        diffuse = np.clip(n @ light, 0, 1)[..., None]
        spec = (np.clip(n @ half, 0, 1) ** 40)[..., None]
        part = rgb[y0:y1, x0:x1]
        lit = part * (0.55 + 0.6 * diffuse) + 0.45 * spec
        m = mask.astype(bool)
        out[y0:y1, x0:x1][m] = np.clip(lit, 0, 1)[m]
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8))


def figure(width: int = 768, height: int = 1024) -> Image.Image:
    W, H = width * SS, height * SS
    img = Image.new("RGB", (W, H), BACKDROP)
    mask = Image.new("L", (W, H), 0)  # one label per moulded part
    d, m = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    part = [0]

    def next_label():
        part[0] += 1
        return part[0]

    def u(x, y):  # layout in a 100 x 133 unit box
        return (x * W / 100.0, y * H / 133.3)

    # decal=True: printed on the part below (eyes, mouth, emblem), not a moulded part itself.
    def poly(points, fill, decal=False):
        pts = [u(x, y) for x, y in points]
        d.polygon(pts, fill=fill)
        if not decal:
            m.polygon(pts, fill=next_label())

    def ellipse(x0, y0, x1, y1, fill, decal=False):
        box = [*u(x0, y0), *u(x1, y1)]
        d.ellipse(box, fill=fill)
        if not decal:
            m.ellipse(box, fill=next_label())

    def rrect(x0, y0, x1, y1, r, fill):
        box = [*u(x0, y0), *u(x1, y1)]
        d.rounded_rectangle(box, radius=r * W / 100.0, fill=fill)
        m.rounded_rectangle(box, radius=r * W / 100.0, fill=next_label())

    skin, skin_d = (236, 188, 150), (205, 150, 115)
    jacket, jacket_d = (196, 38, 44), (140, 22, 30)
    trousers = (38, 52, 92)
    boots = (46, 34, 28)
    hair = (62, 40, 26)
    gold = (232, 184, 60)

    # Legs and boots.
    poly([(38, 80), (49, 80), (48, 118), (39, 118)], trousers)
    poly([(51, 80), (62, 80), (61, 118), (52, 118)], trousers)
    rrect(35.5, 114, 49, 124, 2.5, boots)
    rrect(51, 114, 64.5, 124, 2.5, boots)
    # Arms, bent with hands on hips: the gaps between arm and body stay backdrop.
    poly([(33, 44), (39, 42), (31, 62), (25, 60)], jacket_d)   # left upper arm
    poly([(25, 60), (31, 62), (38, 74), (34, 77)], jacket_d)   # left forearm
    poly([(67, 44), (61, 42), (69, 62), (75, 60)], jacket_d)   # right upper arm
    poly([(75, 60), (69, 62), (62, 74), (66, 77)], jacket_d)   # right forearm
    ellipse(33, 71, 40.5, 78, skin)
    ellipse(59.5, 71, 67, 78, skin)
    # Torso: jacket with lapels, belt with a gold buckle.
    poly([(35, 40), (65, 40), (63, 76), (37, 76)], jacket)
    poly([(45, 40), (55, 40), (50, 58)], (245, 240, 230))       # shirt
    poly([(45, 40), (50, 58), (43, 50)], jacket_d)
    poly([(55, 40), (50, 58), (57, 50)], jacket_d)
    rrect(36.5, 73, 63.5, 80, 1, (30, 24, 20))
    rrect(47, 73.5, 53, 79.5, 1, gold)
    # Neck, head, hair, face.
    rrect(46, 33, 54, 42, 2, skin_d)
    ellipse(39, 13, 61, 38, skin)
    poly([(38.5, 24), (40, 14), (47, 9.5), (56, 10), (61.5, 16), (61.5, 24), (58, 18), (45, 17)], hair)
    ellipse(44.2, 23.5, 47.4, 26.5, (40, 30, 30), decal=True)
    ellipse(52.6, 23.5, 55.8, 26.5, (40, 30, 30), decal=True)
    poly([(46, 31.5), (54, 31.5), (50, 33.6)], (170, 70, 70), decal=True)
    # Chest emblem: a star.
    import math
    star = []
    for i in range(10):
        r = 3.2 if i % 2 == 0 else 1.3
        a = math.pi * i / 5 - math.pi / 2
        star.append((41 + r * math.cos(a), 63 + r * math.sin(a)))
    poly(star, gold, decal=True)

    img = _plastic_light(img, np.asarray(mask))
    return img.reduce(SS)


def accessory(kind: str, size: int = 384) -> Image.Image:
    S = size * SS
    img = Image.new("RGB", (S, S), BACKDROP)
    d = ImageDraw.Draw(img)

    def b(x0, y0, x1, y1):
        return [x0 * S / 100, y0 * S / 100, x1 * S / 100, y1 * S / 100]

    if kind == "mug":
        d.rounded_rectangle(b(24, 25, 66, 80), radius=S * 0.05, fill=(70, 150, 200))
        d.ellipse(b(58, 36, 82, 66), outline=(70, 150, 200), width=int(S * 0.05))
        d.rectangle(b(24, 42, 66, 52), fill=(250, 250, 246))
        d.ellipse(b(26, 22, 64, 30), fill=(90, 55, 30))
    elif kind == "laptop":
        d.polygon([tuple(p * S / 100 for p in q) for q in [(22, 20), (78, 20), (80, 62), (20, 62)]],
                  fill=(70, 78, 90))
        d.polygon([tuple(p * S / 100 for p in q) for q in [(26, 24), (74, 24), (76, 58), (24, 58)]],
                  fill=(90, 170, 230))
        d.polygon([tuple(p * S / 100 for p in q) for q in [(14, 64), (86, 64), (92, 76), (8, 76)]],
                  fill=(160, 166, 176))
    elif kind == "cat":
        d.ellipse(b(22, 42, 78, 88), fill=(232, 140, 50))
        d.ellipse(b(30, 18, 70, 56), fill=(232, 140, 50))
        d.polygon([tuple(p * S / 100 for p in q) for q in [(32, 30), (36, 8), (48, 22)]], fill=(232, 140, 50))
        d.polygon([tuple(p * S / 100 for p in q) for q in [(68, 30), (64, 8), (52, 22)]], fill=(232, 140, 50))
        d.ellipse(b(39, 32, 45, 39), fill=(30, 30, 30))
        d.ellipse(b(55, 32, 61, 39), fill=(30, 30, 30))
    else:  # gear
        import math
        pts = []
        for i in range(48):
            a = 2 * math.pi * i / 48
            r = 36 if (i // 2) % 2 == 0 else 28
            pts.append(((50 + r * math.cos(a)) * S / 100, (50 + r * math.sin(a)) * S / 100))
        d.polygon(pts, fill=(200, 150, 50))
        d.ellipse(b(38, 38, 62, 62), fill=BACKDROP)
    # Each flat colour is one moulded part; the backdrop is none.
    arr = np.asarray(img)
    flat = arr.reshape(-1, 3).astype(np.int32)
    keys = flat[:, 0] * 65536 + flat[:, 1] * 256 + flat[:, 2]
    _, labels = np.unique(keys, return_inverse=True)
    labels = (labels + 1).reshape(arr.shape[:2])
    labels[(arr == BACKDROP).all(axis=2)] = 0
    img = _plastic_light(img, labels)
    return img.reduce(SS)


ACCESSORIES = ("mug", "laptop", "cat", "gear")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--accessory", choices=ACCESSORIES)
    args = ap.parse_args(argv)
    img = accessory(args.accessory) if args.accessory else figure()
    img.save(args.out, optimize=True)


if __name__ == "__main__":
    main()

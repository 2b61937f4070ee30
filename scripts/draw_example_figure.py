#!/usr/bin/env python3
"""Draw a toy action figure on a plain light grey backdrop (figurine/example.py).

    python3 scripts/draw_example_figure.py docs/examples/figure.png
    python3 scripts/draw_example_figure.py acc.png --accessory mug
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figurine.example import ACCESSORIES, BACKDROP, accessory, figure, main  # noqa: E402, F401

if __name__ == "__main__":
    main()

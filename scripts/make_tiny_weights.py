"""Write a complete figurine weights tree with tiny random models and the real file layout.

    python scripts/make_tiny_weights.py /tmp/tiny-weights [--seed N] [--annotators]

The builder is figurine/tiny/weights.py (also `python -m figurine.tiny.weights DIR`); this
script runs it from a clone, with the clone's figurine first on the path.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figurine.tiny.weights import main, write_tokenizer, write_tree  # noqa: E402, F401

if __name__ == "__main__":
    raise SystemExit(main())

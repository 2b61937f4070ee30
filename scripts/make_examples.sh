#!/usr/bin/env bash
# Make the example packages in docs/examples/ (one per template) with `figurine pack`.
#   bash scripts/make_examples.sh            # into docs/examples/
#   bash scripts/make_examples.sh OUT_DIR    # the same pictures elsewhere (tests/test_packaging.py
#                                            # checks they match the committed ones pixel for pixel)
# The figure and accessories are drawn by scripts/draw_example_figure.py (the project's own
# drawing, free to redistribute); each package is rendered at 1080x1350 and then reduced to a
# 540x675 PNG (under 300 KB each) to keep the repository small.
set -euo pipefail
out=${1:-}
if [ -n "$out" ]; then mkdir -p "$out" && out=$(cd "$out" && pwd); fi
cd "$(dirname "$0")/.."
out=${out:-docs/examples}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 scripts/draw_example_figure.py "$out/figure.png"
for a in mug laptop cat gear; do
  python3 scripts/draw_example_figure.py "$tmp/$a.png" --accessory "$a"
done
cp "$tmp/gear.png" "$out/gear.png"   # the README's `figurine pack` example uses it

python3 -m figurine pack "$out/figure.png" --name "Ada Lovelace" --tagline "Analytical Engine Pilot" \
  --accessory-image "$tmp/gear.png" --accessory-image "$tmp/laptop.png" --accessory-image "$tmp/mug.png" \
  --template classic-blister --edition 1843 -o "$tmp/classic-blister.png"
python3 -m figurine pack "$out/figure.png" --name "Zoë Ångström" --tagline "Astrophysicist & Style Icon" \
  --accessory-image "$tmp/cat.png" --accessory-image "$tmp/mug.png" \
  --template fashion-doll --edition 7 -o "$tmp/fashion-doll.png"
python3 -m figurine pack "$out/figure.png" --name "Max Power" --tagline "Synthwave Commander" \
  --accessory-image "$tmp/laptop.png" --accessory-image "$tmp/gear.png" \
  --accessory-image "$tmp/cat.png" --accessory-image "$tmp/mug.png" \
  --template vintage-80s --edition 85 -o "$tmp/vintage-80s.png"
python3 -m figurine pack "$out/figure.png" --name "Ирина Волкова" --tagline "Chief Rocket Engineer" \
  --accessory-image "$tmp/gear.png" --accessory-image "$tmp/laptop.png" \
  --template collector-window --edition 42 -o "$tmp/collector-window.png"

for t in classic-blister fashion-doll vintage-80s collector-window; do
  python3 -c "
import sys
from PIL import Image
Image.open(sys.argv[1]).resize((540, 675), Image.LANCZOS).save(sys.argv[2], optimize=True)
" "$tmp/$t.png" "$out/$t.png"
done
ls -l "$out"

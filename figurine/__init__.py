"""figurine: turn a selfie into a boxed action figure, entirely on your own GPU.

    figurine make selfie.jpg --name "Ada Lovelace" --tagline "Analytical Engine Pilot" -o ada.png

Stages, one module each: photo -> face -> pose -> prompt -> generate -> matte -> packaging
-> provenance. This package's top level imports nothing heavy, so `figurine --help` stays fast.
"""

__version__ = "0.1.0"

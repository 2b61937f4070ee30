"""Tiny stand-ins that let figurine run end to end with no downloaded weights.

    from figurine.tiny.weights import write_tree
    from figurine.tiny.photos import make_face_photo
    write_tree("/tmp/tiny-weights")                 # the real layout, tiny random models (~10 MB)
    make_face_photo("selfie.jpg")                   # a drawn face the tiny detector finds

    figurine make selfie.jpg --name Ada --weights /tmp/tiny-weights --config tiny

weights.py      the whole weights tree (figurine.random_weights builds the diffusers models)
insightface.py  a synthetic buffalo_l pack (detector + recognition ONNX graphs)
birefnet.py     a stand-in for BiRefNet's ONNX export (the learned cut-out)
annotators.py   a random OpenPose body annotator with the real architecture
photos.py       photo-like test pictures: drawn faces, EXIF and GPS as a phone writes them

Every loader in figurine runs on these exactly as on the real files; only the numbers are made
up, so the pictures are noise. torch, diffusers and onnx are imported inside the functions.
"""

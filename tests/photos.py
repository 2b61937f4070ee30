"""Photo-like test pictures: the drawn faces of figurine/tiny/photos.py, for the tests.

    from tests.photos import make_face_photo
    path = make_face_photo(tmp_path / "selfie.jpg")        # one face, JPEG with EXIF + GPS

The pictures moved into the package so that an installed figurine (and its demo) can draw its
own test face; this module keeps the tests' import path.
"""

from figurine.tiny.photos import (  # noqa: F401
    CAMERA_MAKE,
    CAMERA_MODEL,
    GPS_LATITUDE,
    GPS_LONGITUDE,
    LEFT_FACE,
    RIGHT_FACE,
    background,
    draw_face,
    make_face_photo,
    make_flat_photo,
    make_two_face_photo,
    photo_exif,
    save_jpeg,
)

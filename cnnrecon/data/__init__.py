"""Data: image I/O, TFDS builders (scikit-image samples, image folders), grain pipelines."""

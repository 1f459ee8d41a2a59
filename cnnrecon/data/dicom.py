"""DICOM slices (`.dcm`) as images in [0, 1], read with pydicom.

CT slices are mapped linearly from Hounsfield units, air (-1000 HU) to 0 and
+1000 HU (dense bone) to 1, clipped: a fixed window keeps the values
proportional to X-ray attenuation, which the CT task's forward operator
models (a display window from the file's VOI LUT would not). Other
modalities are scaled by their stored bit depth.
"""

import pathlib

import numpy as np

from cnnrecon.errors import CnnreconError

DICOM_EXTENSIONS = ('.dcm',)
CT_WINDOW_HU = (-1000.0, 1000.0)


def is_dicom(path: str | pathlib.Path) -> bool:
  """Whether `path` names a DICOM file by its extension (case-insensitive)."""
  return pathlib.Path(path).suffix.lower() in DICOM_EXTENSIONS


def read_dicom(path: pathlib.Path) -> np.ndarray:
  """Reads one single-frame DICOM image as HxW float32 in [0, 1].

  Args:
    path: a `.dcm` file holding one 2-D frame.

  Returns:
    The frame in [0, 1]: Hounsfield units through `CT_WINDOW_HU` for CT, else
    the stored values over their bit depth.

  Raises:
    CnnreconError: the file is no readable single-frame DICOM image.
  """
  # pydicom is imported here: it takes 0.15 s, and every command that reads images imports this module.
  import pydicom.errors  # pylint: disable=import-outside-toplevel
  from pydicom.pixels import apply_modality_lut  # pylint: disable=import-outside-toplevel
  try:
    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array
  except (OSError, ValueError, AttributeError, pydicom.errors.InvalidDicomError) as error:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise CnnreconError(f'{path} is not a readable DICOM image ({reason}): replace it with a '
                        'single-frame .dcm file or remove it') from error
  if pixels.ndim != 2:
    raise CnnreconError(f'{path} holds DICOM pixels of shape {pixels.shape}, not one 2-D frame: '
                        'export a single slice instead')
  if dataset.get('Modality') == 'CT':
    low, high = CT_WINDOW_HU
    values = (apply_modality_lut(pixels, dataset) - low) / (high - low)
  else:
    values = pixels.astype(np.float64) / (2 ** int(dataset.get('BitsStored', 16)) - 1)
  return np.clip(values, 0.0, 1.0).astype(np.float32)

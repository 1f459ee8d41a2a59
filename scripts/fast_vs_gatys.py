"""A trained fast-style net against 200 Gatys steps on held-out images, under the net's own loss.

    python scripts/fast_vs_gatys.py --workdir runs/fast --out runs/fast/compare [--images coffee,coins] [--side 256]

`--images` names validation images of the bundled samples (never trained on by
`experiments/style_fast.py`). Writes `fast_vs_gatys.png` / `.json` and prints one line.
"""

import argparse
import pathlib

from cnnrecon.data.pipeline import center_crop
from cnnrecon.data.sources import load_source
from cnnrecon.evaluation.workdir import source_images
from cnnrecon.style.compare import describe_figures, write_fast_vs_gatys
from cnnrecon.style.fast import load_fast_net


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--out', required=True)
  parser.add_argument('--images', default='coffee,coins')
  parser.add_argument('--side', type=int, default=256)
  args = parser.parse_args()
  names = args.images.split(',')
  contents = [center_crop(image, args.side) for name, image in source_images(load_source('samples:validation'), 3)
              if name in names]
  pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
  figures = write_fast_vs_gatys(load_fast_net(args.workdir), contents, args.out)
  print(describe_figures(figures, len(contents), args.side))


if __name__ == '__main__':
  main()

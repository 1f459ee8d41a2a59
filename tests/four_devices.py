"""Everything the tests check on 4 devices, in one process started with 4 forced host devices.

`conftest.four_devices` runs `main(folder)` once per pytest run: starting a process and compiling
for 4 devices is the expensive part, so one process serves test_parallel and test_fast_style.
"""

import json
import pathlib

import jax
import numpy as np

from cnnrecon import cli


def _relative_changes(one, four) -> list[float]:
  """Per parameter leaf: |four - one| / |one| of the one-step changes."""
  return jax.tree.leaves(jax.tree.map(lambda a, b: float(np.linalg.norm(b - a) / np.linalg.norm(a)), one, four))


def _whole_gradient_change(one, four) -> float:
  flat = lambda tree: np.concatenate([leaf.ravel() for leaf in jax.tree.leaves(tree)])
  return float(np.linalg.norm(flat(four) - flat(one)) / np.linalg.norm(flat(one)))


def main(folder: str) -> None:
  """Writes `results.json` and the 4-device training runs into `folder`."""
  import test_fast_paths  # pylint: disable=import-outside-toplevel  (tests/ is the working directory)
  import test_fast_style  # pylint: disable=import-outside-toplevel
  import test_parallel  # pylint: disable=import-outside-toplevel
  assert jax.device_count() == 4, jax.devices()
  folder = pathlib.Path(folder)
  changes = test_parallel.one_step_gradients()
  results = {'gradient_changes': {strategy: _relative_changes(changes['one_device'], changes[strategy])
                                  for strategy in ('shard_map', 'pmap')},
             'fast_style_gradient_change': _whole_gradient_change(*test_fast_style.one_step_gradients())}
  test_fast_paths.test_conv_gradients_equal_under_shard_map_and_pmap()  # raises unless equal
  results['conv_gradients_on_four_devices'] = 'equal'
  results['train_status'] = {strategy: cli.main(['train', *test_parallel.FLAGS, f'--config.parallel={strategy}',
                                                 '--workdir', str(folder / strategy)])
                             for strategy in ('shard_map', 'pmap')}
  (folder / 'results.json').write_text(json.dumps(results, indent=1))

"""Exported models: `cnnrecon export` writes them (`writer`); `cnnrecon.inference` loads them.

`load`, `verify` and `ExportedModel` are `cnnrecon.inference`'s, named here too
because exports were loaded from here before: importing this package pulls in
jax and numpy only, so `load` runs an exported StableHLO model where the model
code cannot be imported.
"""

from cnnrecon.inference import ExportedModel, verify
from cnnrecon.inference import load_export as load

__all__ = ['ExportedModel', 'load', 'verify']

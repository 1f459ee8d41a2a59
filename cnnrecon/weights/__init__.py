"""Importers for published weights (the DnCNN authors' MatConvNet, Keras and PyTorch releases)."""

from cnnrecon.weights.dncnn_layers import ImportedWeights
from cnnrecon.weights.importer import FORMATS, import_to_workdir, load_dncnn_weights

__all__ = ['FORMATS', 'ImportedWeights', 'import_to_workdir', 'load_dncnn_weights']

"""Ablation sweeps: `run` trains a sweep's runs (resume, shard, failures), `report` compares them."""

from cnnrecon.sweep.report import sweep_report
from cnnrecon.sweep.run import cross, load_sweep, product, run_name, run_sweep, zipped

__all__ = ['cross', 'load_sweep', 'product', 'run_name', 'run_sweep', 'sweep_report', 'zipped']

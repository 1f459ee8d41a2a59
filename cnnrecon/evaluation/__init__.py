"""cnnrecon.evaluation: restore trained models, score datasets, baselines, tables and report.md.

It lies to the right of `train/` in the data flow: it may use everything
before it, and only the CLI uses it.
"""

from cnnrecon.evaluation.restore import TrainedModel, load_trained
from cnnrecon.evaluation.run import regenerate_report, train_and_evaluate, write_final_report
from cnnrecon.evaluation.scoring import image_metrics, score_images, summarize
from cnnrecon.evaluation.workdir import evaluate_workdir, restore_files

__all__ = ['TrainedModel', 'evaluate_workdir', 'image_metrics', 'load_trained', 'regenerate_report', 'restore_files',
           'score_images', 'summarize', 'train_and_evaluate', 'write_final_report']

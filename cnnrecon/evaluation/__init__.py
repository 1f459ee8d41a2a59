"""cnnrecon.evaluation: score data sets through their task, write tables and report.md, reproduce runs.

It lies to the right of `train/` and `inference` in the data flow, beside
`export/` (neither imports the other); the task decides what is scored
(`Task.evaluate`, `Task.final_report`), this layer loads, writes and prints.
"""

from cnnrecon.evaluation.run import regenerate_report, train_and_evaluate, write_final_report
from cnnrecon.evaluation.workdir import evaluate_workdir, restore_files
from cnnrecon.inference import load_trained
from cnnrecon.models.trained import TrainedModel
from cnnrecon.tasks.scoring import image_metrics, score_images, summarize

__all__ = ['TrainedModel', 'evaluate_workdir', 'image_metrics', 'load_trained', 'regenerate_report', 'restore_files',
           'score_images', 'summarize', 'train_and_evaluate', 'write_final_report']

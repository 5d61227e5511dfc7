"""The files AutoSpecNet stores, one module each: its file name, a small dataclass, ``load`` and ``save``.

| file | module | written by | read by |
|---|---|---|---|
| ``test_metrics.json`` | ``test_metrics`` | training.train, training.calibrate | the sidebar, the card, publish |
| ``split.json`` | ``split`` | training.train | evaluate, calibrate, finder, card, open_set |
| ``training_args.json`` | ``training_args`` | training.train (publish copies it) | card, evaluate, experiments |
| ``history.csv`` | ``history`` | training.train | card, experiments, the Experiments page |
| ``calibration.json`` | ``calibration`` | training.calibrate | the card |
| ``finder.json`` | ``finder_report`` | training.finder | the card, the README |
| ``gallery/gallery.json`` | ``gallery`` | training.gallery | the Gallery page, the Gradio examples |
| ``grid.json``, ``metadata.json`` | ``experiments`` | training.experiments | the Experiments page |
| ``open_set.json`` | ``open_set`` | training.open_set | the card, the About page |

``config.json`` belongs to ``autospecnet.config`` (read, checked) and the model's
``PyTorchModelHubMixin`` (written); ``checkpoint.pt`` to ``training.checkpoint`` (torch).
Everything here imports no torch. A file that comes with a model comes from outside: ``load``
refuses a file of another layout with ``RecordError``, and ``read`` (where a page can do
without the file) gives None instead, logged.
"""

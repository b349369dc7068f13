"""Training callbacks, one module per ``conf/callbacks/<name>.yaml``: ``finite_loss`` (the NaN guard),
``model_checkpoint`` (also ``best_checkpoint.yaml``: ``best.ckpt``), ``rng_state``, ``val_images`` (sample
images for trackers), ``val_best`` (best and last ``val/psnr``), ``quickstart_report``, ``step_time``
(measured ms/step, ``<run>/summary.json``); ``pictures`` draws the LR | bicubic | SR | HR strips both picture
callbacks use; ``log_step`` is the step Lightning logs at. ``early_stopping.yaml`` and ``ema.yaml`` configure
Lightning's own callbacks (off by default)."""
